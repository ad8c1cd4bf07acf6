"""Tasks: the ``task`` decorator, task spans and span lists, and the helpers that run many."""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import inspect
import math
import operator
import re
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    Protocol,
    Self,
    TypeAlias,
    TypeVar,
    overload,
)

import anyio

from strikes._api import wait_for_room
from strikes._context import Span, current_span, warn_no_run
from strikes._ids import new_span_id
from strikes._run import check_name, check_tags, error_events
from strikes._scorers import Scorer, ScorerLike, is_async_callable
from strikes._values import MetricPoint, snapshot, to_builtins
from strikes.events import Input, Metric, Output, TaskFinished, TaskStarted

if TYPE_CHECKING:
    from strikes._run import Run

__all__ = [
    "AsyncTask",
    "ScoreAssertionError",
    "SyncTask",
    "Task",
    "TaskSpan",
    "TaskSpanList",
    "derive_label",
    "task",
    "task_span",
]

P = ParamSpec("P")
P2 = ParamSpec("P2")
T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_NOT_RUN = object()
_CLOSED = object()  # the token of a recorded span after it closed
_time_ns = time.time_ns
_get_span = current_span.get
_set_span = current_span.set
_object_new = object.__new__
_UNRECORDED = "ran as a plain call, not recorded"
_INLINE_STR = 1024  # the longest str that snapshot() keeps inline (INLINE_MAX_BYTES // 4)
_INT_MIN, _INT_END = -(2**63), 2**64  # ints msgpack can carry


def derive_label(name: str) -> str:
    """The default label of a task: its name lowercased, whitespace turned to underscores."""
    return re.sub(r"\s+", "_", name.strip().lower())


class TaskSpan(Span, Generic[R]):
    """One execution of a task: its inputs, output, metrics, timing, children and error."""

    __slots__ = (
        "_ended_ns",
        "_started_ns",
        "_token",
        "attributes",
        "exception",
        "inputs",
        "metrics",
        "name",
        "output",
        "outputs",
        "tags",
    )

    def __init__(
        self,
        name: str,
        *,
        label: str | None = None,
        tags: Iterable[str] = (),
        attributes: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.name = check_name("name", name)
        self.label = check_name("label", label) if label is not None else derive_label(name)
        self.tags = check_tags("tags", tags)
        self.attributes = {k: to_builtins(v) for k, v in (attributes or {}).items()}
        self.span_id = new_span_id()
        self.parent_id = ""
        self.children = ()
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.metrics: dict[str, list[MetricPoint]] = {}
        self.output: R | None = None
        self.exception: BaseException | None = None
        self._started_ns = 0
        self._ended_ns = 0
        self._token: Any = _NOT_RUN

    @classmethod
    def _new(
        cls, name: str, label: str, tags: tuple[str, ...], attributes: dict[str, Any]
    ) -> TaskSpan[Any]:
        """A span from options a Task already checked: the decorated call's fast path."""
        span: TaskSpan[Any] = _object_new(cls)
        span._aggregates = None
        span.name = name
        span.label = label
        span.tags = tags
        span.attributes = attributes
        span.span_id = new_span_id()
        span.parent_id = ""
        span.children = ()
        span.inputs = {}
        span.outputs = {}
        span.metrics = {}
        span.output = None
        span.exception = None
        span._started_ns = 0
        span._ended_ns = 0
        span._token = _NOT_RUN
        return span

    def __repr__(self) -> str:
        state = "failed" if self.failed else ("running" if self.ended_at is None else "finished")
        return f"TaskSpan(name={self.name!r}, label={self.label!r}, {state})"

    @property
    def failed(self) -> bool:
        """Whether the task raised (or was failed by a scorer)."""
        return self.exception is not None

    @property
    def started_at(self) -> float | None:
        """When the task started, in seconds since the epoch; ``None`` before."""
        return self._started_ns / 1e9 if self._started_ns else None

    @property
    def ended_at(self) -> float | None:
        """When the task ended, in seconds since the epoch; ``None`` while running."""
        return self._ended_ns / 1e9 if self._ended_ns else None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, ``None`` while running."""
        if not self._started_ns or not self._ended_ns:
            return None
        return (self._ended_ns - self._started_ns) / 1e9

    @property
    def recorded(self) -> bool:
        """Whether the span belongs to a run (a task called outside any run is not recorded)."""
        return self._token is not _NOT_RUN

    def last_metric(self, name: str) -> float | None:
        """The last value logged under metric ``name`` in this task, ``None`` if none was."""
        points = self.metrics.get(name)
        return points[-1].value if points else None

    def average_metric(self) -> float | None:
        """The mean of the last value of every metric of this task, ``None`` without metrics."""
        if not self.metrics:
            return None
        return math.fsum(points[-1].value for points in self.metrics.values()) / len(self.metrics)

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> bool:
        """Start the span under the current span; ``False`` (after a warning) outside any run."""
        parent = current_span.get()
        if parent is None:
            self._started_ns = _time_ns()
            warn_no_run("task", outcome=_UNRECORDED, stacklevel=4)
            return False
        self._start(parent)
        return True

    def _start(self, parent: Span) -> None:
        run: Run = parent.run
        self.run = run
        self.parent_id = parent_id = parent.span_id
        parent._adopt(self)
        started = self._started_ns = _time_ns()
        run.put(
            TaskStarted(
                run.run_id,
                self.span_id,
                parent_id,
                run.next_seq(),
                started,
                self.name,
                self.label,
                self.tags,
                self.attributes,
            )
        )
        self._token = current_span.set(self)

    def close(self, exc: BaseException | None = None) -> None:
        """End the span, failed with ``exc`` when given; raises RuntimeError if already ended."""
        if self._token is _CLOSED:
            raise RuntimeError(f"task span {self.name!r} is already closed")
        ended = self._ended_ns = _time_ns()
        if exc is not None:
            self.exception = exc
        if self._token is _NOT_RUN:
            return
        run = self.run
        error_text = None
        if self.exception is not None:
            event, error_text = error_events(self, self.exception, run.next_seq)
            run.put(event)
        run.put(
            TaskFinished(
                run.run_id,
                self.span_id,
                self.parent_id,
                run.next_seq(),
                ended,
                self.exception is not None,
                error_text,
            )
        )
        try:
            current_span.reset(self._token)
        except ValueError:  # closed in another context than it was opened in
            if current_span.get() is self:
                current_span.set(None)
        # Spans outlive their call (the run keeps its tree): drop the token, one object
        # fewer per span for the garbage collector to walk.
        self._token = _CLOSED

    def _log_value(
        self, kind: type[Input | Output], target: dict[str, Any], name: str, value: Any
    ) -> None:
        """Record an input or output of this task (an event too when the span is recorded)."""
        target[name] = value
        if self._token is _NOT_RUN:
            return
        run = self.run
        t = type(value)
        # Scalars and short strings are stored inline as they are: skip the snapshot.
        if (
            t is float
            or t is bool
            or value is None
            or (t is str and len(value) <= _INLINE_STR)
            or (t is int and _INT_MIN <= value < _INT_END)
        ):
            stored, ref, type_name = value, None, t.__qualname__
        else:
            frozen = snapshot(value)
            if frozen.blob is not None:
                run._put_blob(frozen.blob)
            stored, ref, type_name = frozen.value, frozen.ref, frozen.type_name
        run.put(
            kind(
                run.run_id,
                self.span_id,
                self.parent_id,
                run.next_seq(),
                _time_ns(),
                name,
                stored,
                ref,
                type_name,
            )
        )

    def _log_score(self, name: str, value: float) -> None:
        """Keep a score as a metric of this task (an event too when the span is recorded)."""
        ts = _time_ns()
        points = self.metrics.get(name)
        if points is None:
            points = self.metrics[name] = []
        points.append(MetricPoint(value, 0, ts))
        if self._token is _NOT_RUN:
            return
        run = self.run
        run.put(Metric(run.run_id, self.span_id, self.parent_id, run.next_seq(), ts, name, value))

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exc)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exc)


def task_span(
    name: str,
    *,
    label: str | None = None,
    tags: Iterable[str] = (),
    **attributes: Any,
) -> TaskSpan[Any]:
    """An ad-hoc task boundary for ``with``/``async with``; ``log_*`` inside act on it."""
    return TaskSpan(name, label=label, tags=tags, attributes=attributes)


# -- lists of spans ------------------------------------------------------------------

SortKey: TypeAlias = "str | Callable[[TaskSpan[Any]], float | None] | None"
"""How spans are ranked: a metric name, a function of the span, or ``None`` for the mean of
the last value of every metric."""

_first = operator.itemgetter(0)


def _ranking_value(span: TaskSpan[Any], key: SortKey) -> float | None:
    if key is None:
        return span.average_metric()
    if isinstance(key, str):
        return span.last_metric(key)
    value = key(span)
    return None if value is None else float(value)


def _check_key(key: object) -> None:
    if key is None or callable(key):
        return
    if isinstance(key, str):
        check_name("key", key)
        return
    raise TypeError(f"key must be a metric name, a callable or None, got {type(key).__qualname__}")


class TaskSpanList(list[TaskSpan[R]]):
    """A list of task spans that ranks them by a metric: ``sorted()`` and ``top_n()``."""

    __slots__ = ()

    @property
    def outputs(self) -> list[R | None]:
        """The output of every span, ``None`` for the failed ones, in list order."""
        return [span.output for span in self]

    @property
    def failures(self) -> TaskSpanList[R]:
        """The spans whose task failed."""
        return TaskSpanList(span for span in self if span.exception is not None)

    def sorted(self, key: SortKey = None, *, reverse: bool = True) -> TaskSpanList[R]:
        """The spans ranked by ``key``, best (highest, unless ``reverse=False``) first.

        ``key`` is a metric name (its last value), a function of the span, or ``None`` for
        the mean of the last value of every metric. Failed spans and spans without a value
        (or a NaN) come last, in their original order. Raises ``TypeError`` for a bad key.
        """
        _check_key(key)
        ranked: list[tuple[float, TaskSpan[R]]] = []
        unranked: list[TaskSpan[R]] = []
        for span in self:
            value = None if span.exception is not None else _ranking_value(span, key)
            if value is None or value != value:
                unranked.append(span)
            else:
                ranked.append((value, span))
        ranked.sort(key=_first, reverse=reverse)  # stable: ties keep list order
        return TaskSpanList([span for _, span in ranked] + unranked)

    @overload
    def top_n(
        self,
        n: int,
        *,
        key: SortKey = None,
        as_outputs: Literal[False] = False,
        reverse: bool = True,
    ) -> TaskSpanList[R]: ...

    @overload
    def top_n(
        self, n: int, *, key: SortKey = None, as_outputs: Literal[True], reverse: bool = True
    ) -> list[R]: ...

    def top_n(
        self, n: int, *, key: SortKey = None, as_outputs: bool = False, reverse: bool = True
    ) -> TaskSpanList[R] | list[R]:
        """The ``n`` best spans by ``key`` (see :meth:`sorted`), or their outputs.

        Failed spans are never among them. Raises ``ValueError`` for a negative ``n``.
        """
        _check_count("n", n, minimum=0)
        best = [span for span in self.sorted(key, reverse=reverse) if span.exception is None][:n]
        if as_outputs:
            return [span.output for span in best]  # type: ignore[misc] # succeeded: output is R
        return TaskSpanList(best)


# -- tasks ---------------------------------------------------------------------------


class ScoreAssertionError(AssertionError):
    """An asserted score of a task was falsy (zero, ``False`` or NaN): the task failed."""

    def __init__(self, task: str, scores: dict[str, float]) -> None:
        self.task = task
        self.scores = scores
        listed = ", ".join(f"{name}={value!r}" for name, value in scores.items())
        super().__init__(f"task {task!r} failed asserted scores: {listed}")

    def __reduce__(self) -> tuple[type[ScoreAssertionError], tuple[str, dict[str, float]]]:
        return type(self), (self.task, self.scores)


def _check_count(argument: str, value: object, *, minimum: int) -> int:
    if type(value) is not int:
        raise TypeError(f"{argument} must be an int, got {type(value).__qualname__}")
    if value < minimum:
        raise ValueError(f"{argument} must be at least {minimum}, got {value}")
    return value


def _check_concurrency(concurrency: object) -> int | None:
    if concurrency is None:
        return None
    return _check_count("concurrency", concurrency, minimum=1)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class _Binder:
    """Names a call's arguments after the function's parameters, cheaply for plain calls."""

    __slots__ = ("_without_first", "defaults", "names", "signature", "simple")

    def __init__(self, signature: inspect.Signature | None) -> None:
        self.signature = signature
        params = list(signature.parameters.values()) if signature is not None else []
        # Only positional parameters: positional calls bind by zip, no Signature.bind.
        self.simple = signature is not None and all(p.kind in _POSITIONAL for p in params)
        self.names = tuple(p.name for p in params)
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self._without_first: _Binder | None = None

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The arguments by name, defaults applied; ``None`` when they do not fit."""
        if self.simple and not kwargs:
            names = self.names
            if len(args) == len(names):
                return dict(zip(names, args, strict=True))
            return self._bind_short(args)
        if self.signature is None:
            return {"args": args, **kwargs} if args else dict(kwargs)
        try:
            bound_arguments = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        bound_arguments.apply_defaults()
        return bound_arguments.arguments

    def _bind_short(self, args: tuple[Any, ...]) -> dict[str, Any] | None:
        names = self.names
        count = len(args)
        if count > len(names):
            return None  # the call itself raises the TypeError
        bound = dict(zip(names, args, strict=False))
        defaults = self.defaults
        for name in names[count:]:
            if name not in defaults:
                return None
            bound[name] = defaults[name]
        return bound

    def without_first(self) -> _Binder:
        """The binder of the same function bound to an instance (no ``self``)."""
        if self._without_first is None:
            signature = self.signature
            if signature is not None:
                signature = signature.replace(parameters=list(signature.parameters.values())[1:])
            self._without_first = _Binder(signature)
        return self._without_first


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have none
        return None


def _calls(
    args: Iterable[Any] | Mapping[str, Sequence[Any]], kwargs: dict[str, Any]
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The calls ``map`` makes: one per first argument, or per row of a dict of lists."""
    if isinstance(args, Mapping):
        columns = {check_name("args key", name): list(values) for name, values in args.items()}
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"args lists must have the same length, got {lengths}")
        count = next(iter(lengths.values()), 0)
        return [
            ((), {**kwargs, **{name: values[i] for name, values in columns.items()}})
            for i in range(count)
        ]
    if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
        raise TypeError(
            "args must be a list of first arguments or a dict of argument lists, "
            f"got {type(args).__qualname__}"
        )
    return [((arg,), kwargs) for arg in args]


def _outputs(spans: TaskSpanList[R]) -> list[R]:
    """The outputs in order; raises the first failure (in input order) if any."""
    for span in spans:
        if span.exception is not None:
            raise span.exception
    return [span.output for span in spans]  # type: ignore[misc] # all succeeded


def _succeeded(spans: TaskSpanList[R]) -> list[R]:
    return [span.output for span in spans if span.exception is None]  # type: ignore[misc]


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception of a task group's group, else the group itself."""
    return group.exceptions[0] if len(group.exceptions) == 1 else group


def _is_generator(func: object) -> bool:
    call = getattr(type(func), "__call__", None)  # noqa: B004 - the class's, not the instance's
    return any(
        check(candidate)
        for candidate in (func, call)
        for check in (inspect.isgeneratorfunction, inspect.isasyncgenfunction)
    )


def _function_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None) or getattr(getattr(func, "func", None), "__name__", None)
    return name if isinstance(name, str) and name else type(func).__name__


class Task(Generic[P, R]):
    """A function whose calls are recorded as task spans; made by :func:`task`.

    :class:`SyncTask` and :class:`AsyncTask` are the two kinds; this base holds what
    they share: the options and how arguments, outputs and scores are recorded.
    """

    func: Callable[P, Any]
    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, Any]
    name: str
    label: str
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    scorers: tuple[Scorer[Any], ...]
    log_inputs: bool | tuple[str, ...]
    log_output: bool
    assert_scores: frozenset[str]

    def __init__(
        self,
        func: Callable[P, Any],
        *,
        name: str | None = None,
        label: str | None = None,
        scorers: Iterable[ScorerLike] = (),
        log_inputs: bool | Iterable[str] = True,
        log_output: bool = True,
        tags: Iterable[str] = (),
        assert_scores: bool | Iterable[str] = False,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"a task wraps a function, got {type(func).__qualname__}")
        if _is_generator(func):
            raise TypeError(
                f"{_function_name(func)!r} is a generator function: a task records one return "
                "value and would end before the generator is consumed; collect the items "
                "and return them (a list), or wrap each item's work in its own task"
            )
        functools.update_wrapper(self, func)  # type: ignore[arg-type] # name, doc, __wrapped__
        self.func = func
        signature = _signature(func)
        self.name = check_name("name", name) if name is not None else _function_name(func)
        self.label = check_name("label", label) if label is not None else derive_label(self.name)
        self.tags = tuple(dict.fromkeys(check_tags("tags", tags)))
        self.attributes = {
            check_name("attribute name", key): to_builtins(value)
            for key, value in (attributes or {}).items()
        }
        self.scorers = self._check_scorers(scorers)
        self.log_inputs = self._check_log_inputs(log_inputs, signature)
        self._input_names = (
            frozenset(self.log_inputs) if isinstance(self.log_inputs, tuple) else None
        )
        self._set_binder(_Binder(signature))
        self.log_output = bool(log_output)
        self.assert_scores = self._check_assert_scores(assert_scores)

    def _check_scorers(self, scorers: Iterable[ScorerLike]) -> tuple[Scorer[Any], ...]:
        if isinstance(scorers, (str, bytes)) or not isinstance(scorers, Iterable):
            raise TypeError(f"scorers must be a list, got {type(scorers).__qualname__}")
        checked = tuple(Scorer.from_callable(scorer) for scorer in scorers)
        names = [scorer.name for scorer in checked]
        if len(set(names)) != len(names):
            raise ValueError(f"scorers must have distinct names, got {names}")
        return checked

    def _check_log_inputs(
        self, log_inputs: bool | Iterable[str], signature: inspect.Signature | None
    ) -> bool | tuple[str, ...]:
        if isinstance(log_inputs, bool):
            return log_inputs
        if isinstance(log_inputs, (str, bytes)) or not isinstance(log_inputs, Iterable):
            raise TypeError(
                "log_inputs must be True, False or a list of argument names, "
                f"got {type(log_inputs).__qualname__}"
            )
        names = tuple(check_name("log_inputs", name) for name in log_inputs)
        if signature is not None and not any(
            p.kind is p.VAR_KEYWORD for p in signature.parameters.values()
        ):
            unknown = [name for name in names if name not in signature.parameters]
            if unknown:
                raise ValueError(f"log_inputs names {unknown}, which {self.name!r} does not take")
        return names

    def _check_assert_scores(self, assert_scores: bool | Iterable[str]) -> frozenset[str]:
        known = [scorer.name for scorer in self.scorers]
        if isinstance(assert_scores, bool):
            return frozenset(known) if assert_scores else frozenset()
        if isinstance(assert_scores, (str, bytes)) or not isinstance(assert_scores, Iterable):
            raise TypeError(
                "assert_scores must be True, False or a list of scorer names, "
                f"got {type(assert_scores).__qualname__}"
            )
        names = frozenset(assert_scores)
        unknown = sorted(str(name) for name in names - set(known))
        if unknown:
            raise ValueError(f"assert_scores names {unknown}, which are not scorers of the task")
        return names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, label={self.label!r})"

    def _bind_to(self, instance: object, owner: type[Any] | None) -> Any:
        """A decorated method: the task bound to ``instance`` (``self`` is not an input)."""
        if instance is None:
            return self
        get = getattr(self.func, "__get__", None)
        if get is None:
            return self
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound.func = get(instance, owner)
        if inspect.ismethod(bound.func):
            bound._set_binder(self._binder.without_first())
        return bound

    def with_(
        self,
        *,
        name: str | None = None,
        label: str | None = None,
        scorers: Iterable[ScorerLike] | None = None,
        log_inputs: bool | Iterable[str] | None = None,
        log_output: bool | None = None,
        tags: Iterable[str] | None = None,
        assert_scores: bool | Iterable[str] | None = None,
        **attributes: Any,
    ) -> Self:
        """A copy of the task with the given options replaced (attributes are merged)."""
        renamed = name is not None and label is None
        return type(self)(
            self.func,
            name=name if name is not None else self.name,
            label=label if label is not None else (None if renamed else self.label),
            scorers=scorers if scorers is not None else self.scorers,
            log_inputs=log_inputs if log_inputs is not None else self.log_inputs,
            log_output=log_output if log_output is not None else self.log_output,
            tags=tags if tags is not None else self.tags,
            assert_scores=(
                assert_scores if assert_scores is not None else sorted(self.assert_scores)
            ),
            attributes={**self.attributes, **attributes},
        )

    # -- one call --------------------------------------------------------------------

    def _new_span(self, parent: Span | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Open a span for one call under ``parent`` (not recorded without one), inputs logged."""
        # TaskSpan._new and _start, inlined: this runs on every decorated call.
        span: TaskSpan[Any] = _object_new(TaskSpan)
        span._aggregates = None
        span.name = name = self.name
        span.label = label = self.label
        span.tags = tags = self.tags
        span.attributes = attributes = self.attributes
        span.span_id = span_id = new_span_id()
        span.children = ()
        span.inputs = {}
        span.outputs = {}
        span.metrics = {}
        span.output = None
        span.exception = None
        span._ended_ns = 0
        span._started_ns = started = _time_ns()
        if parent is None:
            span.parent_id = ""
            span._token = _NOT_RUN
        else:
            span.run = run = parent.run
            span.parent_id = parent_id = parent.span_id
            parent._adopt(span)
            run.put(
                TaskStarted(
                    run.run_id,
                    span_id,
                    parent_id,
                    run.next_seq(),
                    started,
                    name,
                    label,
                    tags,
                    attributes,
                )
            )
            span._token = _set_span(span)
        if self.log_inputs:
            inputs = span.inputs
            log_value = span._log_value
            positional = self._positional
            if positional is not None and not kwargs and len(args) == len(positional):
                # The usual call: every argument positional, logged under its parameter name.
                for arg_name, value in zip(positional, args, strict=False):
                    log_value(Input, inputs, arg_name, value)
                return span
            bound = self._binder.bind(args, kwargs)
            if bound is not None:
                names = self._input_names
                for arg_name, value in bound.items():
                    if names is None or arg_name in names:
                        log_value(Input, inputs, arg_name, value)
        return span

    def _set_binder(self, binder: _Binder) -> None:
        self._binder = binder
        # Parameter names for the positional fast path: all parameters positional and
        # every one of them logged.
        self._positional = binder.names if binder.simple and self._input_names is None else None

    def _check_scores(self, scores: dict[str, float]) -> None:
        failed = {
            name: value
            for name, value in scores.items()
            if name in self.assert_scores and (value == 0 or value != value)
        }
        if failed:
            raise ScoreAssertionError(self.name, failed)


class SyncTask(Task[P, R]):
    """A task around a sync function: calling it returns the value; helpers use threads."""

    func: Callable[P, R]

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self: SyncTask[Concatenate[T, P2], R], instance: T, owner: type[Any] | None = None
    ) -> SyncTask[P2, R]: ...

    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        """A decorated method: the task bound to ``instance`` (``self`` is not an input)."""
        return self._bind_to(instance, owner)

    def __init__(self, func: Callable[P, R], **options: Any) -> None:
        super().__init__(func, **options)
        async_scorers = [scorer.name for scorer in self.scorers if scorer.is_async]
        if async_scorers:
            raise TypeError(
                f"task {self.name!r} is sync but its scorers {async_scorers} are async; "
                "make the function async, or the scorers sync"
            )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function in a task span and return its value (re-raising its error)."""
        parent = _get_span()
        if parent is None:
            warn_no_run("task", outcome=_UNRECORDED, stacklevel=3)
            return self.func(*args, **kwargs)
        span = self._execute(parent, args, kwargs)
        if span.exception is not None:
            raise span.exception
        return span.output  # type: ignore[return-value] # set when the call succeeded

    def _execute(
        self, parent: Span | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskSpan[R]:
        span: TaskSpan[R] = self._new_span(parent, args, kwargs)
        try:
            output = self.func(*args, **kwargs)
            span.output = output
            if self.log_output:
                span._log_value(Output, span.outputs, "output", output)
            if self.scorers:
                scores = {}
                for scorer in self.scorers:
                    value = scores[scorer.name] = scorer.score(output)
                    span._log_score(scorer.name, value)
                if self.assert_scores:
                    self._check_scores(scores)
        except Exception as exc:
            span.close(exc)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: recorded, then raised
            span.close(exc)
            raise
        else:
            span.close()
        return span

    def run(self, *args: P.args, **kwargs: P.kwargs) -> TaskSpan[R]:
        """Call the task and return its span; an exception is kept on the span, not raised.

        ``BaseException``s that are not ``Exception``s (``KeyboardInterrupt``,
        ``SystemExit``) are recorded and propagate.
        """
        parent = _get_span()
        if parent is None:
            warn_no_run("task", outcome=_UNRECORDED, stacklevel=3)
        return self._execute(parent, args, kwargs)

    try_run = run

    def try_(self, *args: P.args, **kwargs: P.kwargs) -> R | None:
        """Call the task; its value, or ``None`` if it failed (the failure is recorded)."""
        span = self.run(*args, **kwargs)
        return None if span.exception is not None else span.output

    def retry(self, attempts: int, /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the task up to ``attempts`` times until one succeeds; raises the last error."""
        _check_count("attempts", attempts, minimum=1)
        for _ in range(attempts):
            span = self.run(*args, **kwargs)
            if span.exception is None:
                return span.output  # type: ignore[return-value] # succeeded
        assert span.exception is not None
        raise span.exception

    # -- many calls, on worker threads -----------------------------------------------

    def _pool(self, calls: int, concurrency: int | None) -> concurrent.futures.ThreadPoolExecutor:
        workers = min(concurrency, calls) if concurrency is not None else None
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"strikes-{self.label}"
        )

    def _submit_all(
        self,
        pool: concurrent.futures.ThreadPoolExecutor,
        calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
    ) -> list[concurrent.futures.Future[TaskSpan[R]]]:
        parent = _get_span()
        if parent is None:
            warn_no_run("task", outcome=_UNRECORDED, stacklevel=5)
        # Each call runs in a copy of the caller's context: the caller's run and task
        # (and any contextvar of the user's) are current in the worker thread.
        return [
            pool.submit(contextvars.copy_context().run, self._execute, parent, call, kwargs)
            for call, kwargs in calls
        ]

    def _run_all(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], concurrency: int | None
    ) -> TaskSpanList[R]:
        concurrency = _check_concurrency(concurrency)
        if not calls:
            return TaskSpanList()
        pool = self._pool(len(calls), concurrency)
        try:
            futures = self._submit_all(pool, calls)
            spans = TaskSpanList([future.result() for future in futures])
        except BaseException:  # Ctrl-C while waiting: drop the calls not started yet
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return spans

    def map_run(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> TaskSpanList[R]:
        """Call the task once per first argument (or per row of a dict of argument lists).

        Returns every span, in input order; never raises for a failed call. ``kwargs`` go
        to every call. Calls run on worker threads, at most ``concurrency`` at once (by
        default the thread pool's size), each in a copy of the caller's context.
        """
        return self._run_all(_calls(args, kwargs), concurrency)

    def map(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> list[R]:
        """Like :meth:`map_run`, returning outputs in input order; raises the first failure."""
        return _outputs(self._run_all(_calls(args, kwargs), concurrency))

    def try_map(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> list[R]:
        """Like :meth:`map`, leaving the failed calls out instead of raising."""
        return _succeeded(self._run_all(_calls(args, kwargs), concurrency))

    def many_run(
        self, count: int, /, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> TaskSpanList[R]:
        """Call the task ``count`` times with the same arguments; every span, in order."""
        _check_count("count", count, minimum=0)
        return self._run_all([(args, kwargs)] * count, concurrency)

    def many(
        self, count: int, /, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> list[R]:
        """Like :meth:`many_run`, returning the outputs; raises the first failure."""
        return _outputs(self.many_run(count, *args, concurrency=concurrency, **kwargs))

    def try_many(
        self, count: int, /, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> list[R]:
        """Like :meth:`many`, leaving the failed calls out instead of raising."""
        return _succeeded(self.many_run(count, *args, concurrency=concurrency, **kwargs))

    def stream_map(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> AbstractContextManager[Iterator[TaskSpan[R]]]:
        """Like :meth:`map_run`, for ``with``: yields each span as soon as its call ends.

        Leaving the block early drops the calls not started yet and waits for the running
        ones.
        """
        return self._stream(_calls(args, kwargs), _check_concurrency(concurrency))

    @contextmanager
    def _stream(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], concurrency: int | None
    ) -> Iterator[Iterator[TaskSpan[R]]]:
        pool = self._pool(max(len(calls), 1), concurrency)
        try:
            futures = self._submit_all(pool, calls)
            yield (future.result() for future in concurrent.futures.as_completed(futures))
        finally:
            pool.shutdown(cancel_futures=True)


class AsyncTask(Task[P, R]):
    """A task around an async function: calling it returns a coroutine; helpers use anyio."""

    func: Callable[P, Awaitable[R]]

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self: AsyncTask[Concatenate[T, P2], R], instance: T, owner: type[Any] | None = None
    ) -> AsyncTask[P2, R]: ...

    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        """A decorated method: the task bound to ``instance`` (``self`` is not an input)."""
        return self._bind_to(instance, owner)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await the function in a task span and return its value (re-raising its error)."""
        parent = _get_span()
        if parent is None:
            warn_no_run("task", outcome=_UNRECORDED, stacklevel=3)
            return await self.func(*args, **kwargs)
        span = await self._execute(parent, args, kwargs)
        if span.exception is not None:
            raise span.exception
        return span.output  # type: ignore[return-value] # set when the call succeeded

    async def _execute(
        self, parent: Span | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskSpan[R]:
        span: TaskSpan[R] = self._new_span(parent, args, kwargs)
        try:
            output = await self.func(*args, **kwargs)
            span.output = output
            if self.log_output:
                span._log_value(Output, span.outputs, "output", output)
            if self.scorers:
                scores = {}
                for scorer in self.scorers:
                    value = scores[scorer.name] = await scorer.score_async(output)
                    span._log_score(scorer.name, value)
                if self.assert_scores:
                    self._check_scores(scores)
        except Exception as exc:
            span.close(exc)
        except BaseException as exc:  # cancellation, KeyboardInterrupt: recorded, then raised
            span.close(exc)
            raise
        else:
            span.close()
        return span

    async def run(self, *args: P.args, **kwargs: P.kwargs) -> TaskSpan[R]:
        """Await the task and return its span; an exception is kept on the span, not raised.

        Cancellation and other ``BaseException``s that are not ``Exception``s are
        recorded and propagate.
        """
        parent = _get_span()
        if parent is None:
            warn_no_run("task", outcome=_UNRECORDED, stacklevel=3)
        return await self._execute(parent, args, kwargs)

    try_run = run

    async def try_(self, *args: P.args, **kwargs: P.kwargs) -> R | None:
        """Await the task; its value, or ``None`` if it failed (the failure is recorded)."""
        span = await self.run(*args, **kwargs)
        return None if span.exception is not None else span.output

    async def retry(self, attempts: int, /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await the task up to ``attempts`` times until one succeeds; raises the last error."""
        _check_count("attempts", attempts, minimum=1)
        for _ in range(attempts):
            span = await self.run(*args, **kwargs)
            if span.exception is None:
                return span.output  # type: ignore[return-value] # succeeded
        assert span.exception is not None
        raise span.exception

    # -- many calls, in an anyio task group ------------------------------------------

    def _workers(
        self,
        calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
        concurrency: int | None,
        done: Callable[[int, TaskSpan[R]], None],
    ) -> tuple[int, Callable[[], Coroutine[Any, Any, None]]]:
        """How many workers to start, and the worker: each takes the next call until none."""
        parent = _get_span()
        if parent is None:
            warn_no_run("task", outcome=_UNRECORDED, stacklevel=5)
        pending = iter(enumerate(calls))

        # A fixed pool of workers rather than one task per call behind a CapacityLimiter:
        # the same bound, without thousands of parked tasks for a long map.
        async def worker() -> None:
            for index, (call, kwargs) in pending:
                await wait_for_room()  # a full mailbox parks this worker, not the loop
                done(index, await self._execute(parent, call, kwargs))

        count = len(calls) if concurrency is None else min(concurrency, len(calls))
        return count, worker

    async def _run_all(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], concurrency: int | None
    ) -> TaskSpanList[R]:
        concurrency = _check_concurrency(concurrency)
        spans: list[Any] = [None] * len(calls)
        count, worker = self._workers(calls, concurrency, spans.__setitem__)
        try:
            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(worker)
        except BaseExceptionGroup as errors:
            raise _single(errors) from None
        return TaskSpanList(spans)

    async def map_run(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> TaskSpanList[R]:
        """Await the task once per first argument (or per row of a dict of argument lists).

        Returns every span, in input order; never raises for a failed call. ``kwargs`` go
        to every call. Calls run in an anyio task group (asyncio or trio), at most
        ``concurrency`` at once (default: all).
        """
        return await self._run_all(_calls(args, kwargs), concurrency)

    async def map(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> list[R]:
        """Like :meth:`map_run`, returning outputs in input order; raises the first failure."""
        return _outputs(await self._run_all(_calls(args, kwargs), concurrency))

    async def try_map(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> list[R]:
        """Like :meth:`map`, leaving the failed calls out instead of raising."""
        return _succeeded(await self._run_all(_calls(args, kwargs), concurrency))

    async def many_run(
        self, count: int, /, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> TaskSpanList[R]:
        """Await the task ``count`` times with the same arguments; every span, in order."""
        _check_count("count", count, minimum=0)
        return await self._run_all([(args, kwargs)] * count, concurrency)

    async def many(
        self, count: int, /, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> list[R]:
        """Like :meth:`many_run`, returning the outputs; raises the first failure."""
        return _outputs(await self.many_run(count, *args, concurrency=concurrency, **kwargs))

    async def try_many(
        self, count: int, /, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> list[R]:
        """Like :meth:`many`, leaving the failed calls out instead of raising."""
        return _succeeded(await self.many_run(count, *args, concurrency=concurrency, **kwargs))

    def stream_map(
        self,
        args: Iterable[Any] | Mapping[str, Sequence[Any]],
        /,
        *,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> AbstractAsyncContextManager[AsyncIterator[TaskSpan[R]]]:
        """Like :meth:`map_run`, for ``async with``: yields each span as soon as its call ends.

        A context manager rather than an async generator: the calls run in a task group,
        which must not stay open across the yields of a generator. Leaving the block
        early cancels the calls still running.
        """
        return self._stream(_calls(args, kwargs), _check_concurrency(concurrency))

    @asynccontextmanager
    async def _stream(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], concurrency: int | None
    ) -> AsyncIterator[AsyncIterator[TaskSpan[R]]]:
        send, receive = anyio.create_memory_object_stream[TaskSpan[R]](math.inf)
        # Spans are kept by their parent anyway, so an unbounded buffer costs no memory.
        count, worker = self._workers(calls, concurrency, lambda _, span: send.send_nowait(span))
        running = count

        async def work_then_close() -> None:
            nonlocal running
            try:
                await worker()
            finally:
                running -= 1
                if running == 0:
                    send.close()

        if count == 0:
            send.close()
        try:
            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(work_then_close)
                try:
                    with receive:
                        yield receive
                finally:
                    group.cancel_scope.cancel()
        except BaseExceptionGroup as errors:
            raise _single(errors) from None


class _TaskDecorator(Protocol):
    """What ``task(...)`` with options returns: a decorator making a sync or async task."""

    @overload
    def __call__(  # type: ignore[overload-overlap] # async functions are callables too
        self, func: Callable[P, Coroutine[Any, Any, R_co]], /
    ) -> AsyncTask[P, R_co]: ...

    @overload
    def __call__(self, func: Callable[P, R_co], /) -> SyncTask[P, R_co]: ...


@overload
def task(  # type: ignore[overload-overlap] # async functions are callables too
    func: Callable[P, Coroutine[Any, Any, R]], /
) -> AsyncTask[P, R]: ...


@overload
def task(func: Callable[P, R], /) -> SyncTask[P, R]: ...


@overload
def task(
    func: None = None,
    /,
    *,
    name: str | None = None,
    label: str | None = None,
    scorers: Iterable[ScorerLike] = (),
    log_inputs: bool | Iterable[str] = True,
    log_output: bool = True,
    tags: Iterable[str] = (),
    assert_scores: bool | Iterable[str] = False,
    **attributes: Any,
) -> _TaskDecorator: ...


def task(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    label: str | None = None,
    scorers: Iterable[ScorerLike] = (),
    log_inputs: bool | Iterable[str] = True,
    log_output: bool = True,
    tags: Iterable[str] = (),
    assert_scores: bool | Iterable[str] = False,
    **attributes: Any,
) -> Any:
    """Make a function a task: ``@task``, ``@task()`` or ``@task(name=..., ...)``.

    A sync function gives a :class:`SyncTask` (calling it returns the value), an async one
    an :class:`AsyncTask` (calling it returns a coroutine). Each call is recorded as a task
    span of the current run: arguments as inputs (``log_inputs``: all, none, or the names
    listed), the return value as output ``"output"``, each scorer's score as a metric.
    ``assert_scores`` (``True`` or scorer names) fails the call when such a score is falsy.
    Raises ``TypeError`` for a generator function, for async scorers on a sync function,
    and for bad options (``ValueError`` for bad values), naming the argument.
    """

    def decorate(function: Callable[..., Any]) -> Task[..., Any]:
        if not callable(function):
            raise TypeError(
                f"task() takes the function to wrap, got {type(function).__qualname__}; "
                "pass options by keyword: task(name=...)"
            )
        kind: type[Task[..., Any]] = AsyncTask if is_async_callable(function) else SyncTask
        return kind(
            function,
            name=name,
            label=label,
            scorers=scorers,
            log_inputs=log_inputs,
            log_output=log_output,
            tags=tags,
            assert_scores=assert_scores,
            attributes=attributes,
        )

    if func is None:
        return decorate
    return decorate(func)
