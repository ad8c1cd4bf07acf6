"""The current span (a run or a task) per context, and what every span holds."""

from __future__ import annotations

import warnings
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strikes._run import Run
    from strikes._task import TaskSpan

__all__ = ["NoRunWarning", "Span", "current_span", "warn_no_run"]

AGGREGATIONS = frozenset({"direct", "min", "max", "avg", "sum", "count"})


class NoRunWarning(UserWarning):
    """Something was logged with no run open: it was ignored."""


class Span:
    """What runs and tasks share: identity, children, and aggregates of repeated metrics."""

    __slots__ = ("_aggregates", "children", "label", "parent_id", "run", "span_id")

    run: Run
    span_id: str
    parent_id: str
    label: str
    children: list[TaskSpan[Any]] | tuple[()]
    """Child tasks in start order; the shared ``()`` until the first (see :meth:`_adopt`)."""

    def __init__(self) -> None:
        self._aggregates: dict[str, list[float]] | None = None

    def _adopt(self, child: TaskSpan[Any]) -> None:
        """Append ``child``; a leaf keeps the shared empty tuple, not a list of its own.

        The run keeps every span until it closes, and each list is one more object the
        garbage collector walks on every full collection: with most spans leaves, this
        halves what 100,000 tasks put in its way.
        """
        children = self.children
        if type(children) is tuple:
            self.children = [child]
        else:
            children.append(child)  # type: ignore[union-attr]

    def aggregate(self, name: str, value: float, aggregation: str) -> float:
        """Fold ``value`` into the running aggregate of metric ``name`` and return the result."""
        if aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {', '.join(sorted(AGGREGATIONS))}; got {aggregation!r}"
            )
        if self._aggregates is None:
            self._aggregates = {}
        # [count, sum, min, max] of the raw values logged so far under this name
        agg = self._aggregates.get(name)
        if agg is None:
            agg = self._aggregates[name] = [1.0, value, value, value]
        else:
            agg[0] += 1
            agg[1] += value
            agg[2] = min(agg[2], value)
            agg[3] = max(agg[3], value)
        count, total, low, high = agg
        match aggregation:
            case "min":
                return low
            case "max":
                return high
            case "sum":
                return total
            case "avg":
                return total / count
            case "count":
                return count
            case _:
                return value

    @property
    def all_tasks(self) -> list[TaskSpan[Any]]:
        """Every task below this span, depth first, in start order."""
        found: list[TaskSpan[Any]] = []
        stack = list(reversed(self.children))
        while stack:
            task = stack.pop()
            found.append(task)
            stack.extend(reversed(task.children))
        return found

    @property
    def tasks(self) -> list[TaskSpan[Any]]:
        """The tasks started directly under this span."""
        return list(self.children)


current_span: ContextVar[Span | None] = ContextVar("strikes_current_span", default=None)
"""The innermost open run or task of the current context."""

_warned: set[str] = set()


def warn_no_run(what: str, *, stacklevel: int = 3, outcome: str = "was ignored") -> None:
    """Warn, once per process and call, that ``what`` had no run to go to."""
    if what in _warned:
        return
    _warned.add(what)
    warnings.warn(
        f"strikes.{what}() was called outside of a run and {outcome}; "
        "open one with `with strikes.run():`",
        NoRunWarning,
        stacklevel=stacklevel,
    )
