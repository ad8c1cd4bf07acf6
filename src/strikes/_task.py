"""Task spans: units of work inside a run, with their own inputs, outputs and metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from strikes._context import Span, current_span, warn_no_run
from strikes._ids import new_span_id
from strikes._run import check_name, check_tags, error_events
from strikes._values import MetricPoint, to_builtins
from strikes.events import TaskFinished, TaskStarted

if TYPE_CHECKING:
    from strikes._run import Run

__all__ = ["TaskSpan", "derive_label", "task_span"]

_NOT_RUN = object()


def derive_label(name: str) -> str:
    """The default label of a task: its name lowercased, whitespace turned to underscores."""
    return re.sub(r"\s+", "_", name.strip().lower())


class TaskSpan(Span):
    """One execution of a task: its inputs, output, metrics, timing, children and error."""

    __slots__ = (
        "_started_ns",
        "_token",
        "attributes",
        "ended_at",
        "exception",
        "inputs",
        "metrics",
        "name",
        "output",
        "outputs",
        "started_at",
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
        self.children = []
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.metrics: dict[str, list[MetricPoint]] = {}
        self.output: Any = None
        self.exception: BaseException | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._started_ns = 0
        self._token: Any = _NOT_RUN

    def __repr__(self) -> str:
        state = "failed" if self.failed else ("running" if self.ended_at is None else "finished")
        return f"TaskSpan(name={self.name!r}, label={self.label!r}, {state})"

    @property
    def failed(self) -> bool:
        """Whether the task raised (or was failed by a scorer)."""
        return self.exception is not None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, ``None`` while running."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @property
    def recorded(self) -> bool:
        """Whether the span belongs to a run (a task called outside any run is not recorded)."""
        return self._token is not _NOT_RUN

    def open(self) -> bool:
        """Start the span under the current span; ``False`` (after a warning) outside any run."""
        parent = current_span.get()
        self.started_at = time.time()
        if parent is None:
            warn_no_run("task", stacklevel=4)
            return False
        run: Run = parent.run
        self.run = run
        self.parent_id = parent.span_id
        parent.children.append(self)
        self._started_ns = time.time_ns()
        run.put(
            TaskStarted(
                run.run_id,
                self.span_id,
                self.parent_id,
                run.next_seq(),
                self._started_ns,
                self.name,
                self.label,
                self.tags,
                self.attributes,
            )
        )
        self._token = current_span.set(self)
        return True

    def close(self, exc: BaseException | None = None) -> None:
        """End the span, failed with ``exc`` when given."""
        self.ended_at = time.time()
        if exc is not None:
            self.exception = exc
        if not self.recorded:
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
                time.time_ns(),
                self.exception is not None,
                error_text,
            )
        )
        try:
            current_span.reset(self._token)
        except ValueError:  # closed in another context than it was opened in
            if current_span.get() is self:
                current_span.set(None)

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
) -> TaskSpan:
    """An ad-hoc task boundary for ``with``/``async with``; ``log_*`` inside act on it."""
    return TaskSpan(name, label=label, tags=tags, attributes=attributes)
