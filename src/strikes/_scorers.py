"""Scorers: callables that rate a task's output; each score becomes a metric of the task."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeAlias, TypeVar

from strikes._run import check_name

__all__ = ["Scorer", "ScorerLike", "is_async_callable", "score_value"]

T = TypeVar("T")


def is_async_callable(func: object) -> bool:
    """Whether calling ``func`` returns a coroutine (async def, or an async ``__call__``)."""
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(type(func), "__call__", None)  # noqa: B004 - the class's, not the instance's
    return call is not None and inspect.iscoroutinefunction(call)


def score_value(result: object, scorer: str) -> float:
    """Turn what a scorer returned into a float; raises ``TypeError`` naming the scorer.

    A number or bool is taken as is; a metric-like object (anything with a numeric
    ``value`` attribute, such as :class:`strikes.MetricPoint`) gives its ``value``.
    """
    kind = type(result)
    if kind is float:
        return result  # type: ignore[return-value]
    if kind is int or kind is bool:
        return float(result)  # type: ignore[arg-type]
    if isinstance(result, numbers.Real):  # numpy scalars, Fraction, ...
        return float(result)
    value = getattr(result, "value", None)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(
        f"scorer {scorer!r} must return a number, a bool or a metric (an object with a "
        f"numeric .value), got {kind.__qualname__}: {result!r:.80}"
    )


class Scorer(Generic[T]):
    """A named scorer: rates a task's output; ``name`` is the metric the score is logged as.

    ``func`` may be sync or async and returns a number, a bool or a metric-like object.
    Raises ``TypeError`` when ``func`` is not callable, ``ValueError`` for a bad name.
    """

    __slots__ = ("func", "is_async", "name")

    def __init__(self, func: Callable[[T], Any], *, name: str | None = None) -> None:
        if not callable(func):
            raise TypeError(f"func must be callable, got {type(func).__qualname__}")
        if name is None:
            name = getattr(func, "__name__", None) or type(func).__name__
        self.name: str = check_name("name", name)
        self.func = func
        self.is_async: bool = is_async_callable(func)

    @classmethod
    def from_callable(cls, scorer: Scorer[T] | Callable[[T], Any]) -> Scorer[T]:
        """Return ``scorer`` if it is a Scorer, else wrap the callable (named after it)."""
        if isinstance(scorer, Scorer):
            return scorer
        return cls(scorer)

    def __repr__(self) -> str:
        kind = "async " if self.is_async else ""
        return f"Scorer({self.name!r}, {kind}{getattr(self.func, '__qualname__', self.func)!r})"

    def score(self, output: T) -> float:
        """Rate ``output`` in the calling thread; raises ``TypeError`` for an async scorer."""
        if self.is_async:
            raise TypeError(f"scorer {self.name!r} is async: use `await scorer.score_async(...)`")
        result = self.func(output)
        if inspect.isawaitable(result):
            # A sync-looking callable that returned an awaitable: close it so no
            # "never awaited" warning follows the error.
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise TypeError(
                f"scorer {self.name!r} returned an awaitable; a sync task needs sync scorers "
                "(make the task async to use async scorers)"
            )
        return score_value(result, self.name)

    async def score_async(self, output: T) -> float:
        """Rate ``output``, awaiting the scorer when it is async."""
        result = self.func(output)
        if inspect.isawaitable(result):
            awaited: Awaitable[Any] = result
            result = await awaited
        return score_value(result, self.name)


ScorerLike: TypeAlias = Scorer[Any] | Callable[[Any], Any]
"""What ``task(scorers=[...])`` accepts: a :class:`Scorer` or a plain (sync or async) callable."""
