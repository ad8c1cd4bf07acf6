"""What a run's actor knows about its run: counts and metric aggregates, folded from events."""

from __future__ import annotations

from typing import Any

import msgspec

from strikes.events import (
    Event,
    Metric,
    Param,
    RunFinished,
    RunStarted,
    Tag,
    TaskFinished,
    TaskStarted,
)

__all__ = ["MetricSummary", "RunState"]


class MetricSummary(msgspec.Struct):
    """Aggregates of one metric name, as written in the run's manifest."""

    count: int = 0
    last: float | None = None
    last_step: int = 0
    min: float | None = None
    """Smallest value, NaN ignored once a number was seen (``None`` in JSON when NaN)."""
    max: float | None = None


class RunState:
    """The run as the actor sees it: identity, status, counts, params and metric summaries.

    Only the actor's thread mutates it; sinks read it (the local store writes it into
    the manifest).
    """

    __slots__ = (
        "attributes",
        "ended_at",
        "error",
        "events",
        "last_seen",
        "metrics",
        "name",
        "owner",
        "params",
        "project",
        "run_id",
        "started_at",
        "stats",
        "status",
        "tags",
        "tasks",
    )

    def __init__(self, run_id: str, *, owner: bool) -> None:
        self.run_id = run_id
        self.owner = owner
        self.name = ""
        self.project = ""
        self.status = "running"
        self.error: str | None = None
        self.tags: list[str] = []
        self.attributes: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, MetricSummary] = {}
        self.started_at = 0
        self.ended_at: int | None = None
        self.last_seen = 0
        self.events = 0
        self.tasks = 0
        self.stats: dict[str, int] = {}

    def fold(self, events: list[Event]) -> None:
        """Update the state with a batch of events, in order."""
        metrics = self.metrics
        for event in events:
            kind = type(event)
            if kind is Metric:
                m: Metric = event  # type: ignore[assignment]
                if m.parent_id:  # task metrics are summarised on the task, not the run
                    continue
                summary = metrics.get(m.name)
                if summary is None:
                    summary = metrics[m.name] = MetricSummary()
                value = m.value
                low, high = summary.min, summary.max
                # `x != x` is NaN: a number replaces a NaN bound, NaN never replaces a number
                if low is None or value < low or low != low:
                    summary.min = value
                if high is None or value > high or high != high:
                    summary.max = value
                summary.count += 1
                summary.last = value
                summary.last_step = m.step
            else:
                self._fold_other(event)
        self.events += len(events)
        if events:
            self.last_seen = events[-1].ts

    def _fold_other(self, event: Event) -> None:
        match event:
            case RunStarted():
                self.name = event.name
                self.project = event.project
                self.tags.extend(t for t in event.tags if t not in self.tags)
                self.attributes = dict(event.attributes)
                self.started_at = event.ts
            case RunFinished():
                self.status = event.status
                self.error = event.error
                self.ended_at = event.ts
                self.stats = dict(event.stats)
            case Param() if not event.parent_id:
                self.params[event.name] = event.value
            case Tag() if not event.parent_id:
                self.tags.extend(t for t in event.tags if t not in self.tags)
            case TaskStarted():
                self.tasks += 1
            case TaskFinished() | _:
                pass
