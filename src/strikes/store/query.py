"""Run filters and the flat tables (runs, metrics, tasks) that queries and exports share.

A table is a dict of equal-length column lists, keyed by the documented column names
(see ``docs/reading.md``); DataFrames, CSV and Parquet are all built from it.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from strikes._values import to_builtins
from strikes.store.manifest import Manifest

if TYPE_CHECKING:
    from strikes.store.reader import RunRecord, TaskRecord

__all__ = [
    "METRIC_COLUMNS",
    "NS_COLUMNS",
    "RUN_COLUMNS",
    "TASK_COLUMNS",
    "MetricRow",
    "RunQuery",
    "Table",
    "TimeBound",
    "metrics_table",
    "runs_table",
    "tasks_table",
    "to_ns",
]

Table = dict[str, list[Any]]
"""Columns by name, each a list of the same length."""

TimeBound = datetime | timedelta | int | float
"""A point in time: an aware ``datetime``, a ``timedelta`` before now, or epoch seconds."""

RUN_COLUMNS = (
    "run_id",
    "name",
    "project",
    "status",
    "error",
    "tags",
    "started_at",
    "ended_at",
    "duration",
    "last_seen",
    "events",
    "tasks",
    "crashed",
    "git_commit",
    "git_dirty",
)
"""Fixed leading columns of the runs table; ``param.<name>`` and ``metric.<name>.<stat>`` follow."""

METRIC_COLUMNS = ("run_id", "run_name", "metric", "step", "value", "timestamp")
"""Columns of the metrics table: one row per logged point."""

NS_COLUMNS = frozenset({"timestamp"})
"""Table columns held as ns since the epoch; exports turn them into UTC datetimes."""

TASK_COLUMNS = (
    "run_id",
    "task_id",
    "parent_id",
    "depth",
    "name",
    "label",
    "status",
    "error",
    "started_at",
    "ended_at",
    "duration",
    "inputs",
    "outputs",
    "params",
    "metrics",
)
"""Columns of the tasks table: one row per task, depth first."""

_json = msgspec.json.Encoder()


def to_ns(bound: TimeBound, *, now: datetime | None = None) -> int:
    """``bound`` as ns since the epoch; raises ``TypeError`` for any other type."""
    if isinstance(bound, datetime):
        if bound.tzinfo is None:
            raise ValueError("datetime bounds must be timezone-aware (naive times are ambiguous)")
        return _exact_ns(bound)
    if isinstance(bound, timedelta):
        return _exact_ns((now or datetime.now(UTC)) - bound)
    if isinstance(bound, (int, float)) and not isinstance(bound, bool):
        return int(bound * 1e9)
    raise TypeError(f"time bound must be a datetime, timedelta or epoch seconds, got {bound!r:.80}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _exact_ns(moment: datetime) -> int:
    # Integer arithmetic: a float timestamp would round a run's own start time away.
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _check_strings(argument: str, value: str | Collection[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset((value,))
    if not all(isinstance(item, str) for item in value):
        raise TypeError(f"{argument} must be a str or a list of str, got {value!r:.80}")
    return frozenset(value)


def _same_value(stored: Any, wanted: Any) -> bool:
    """Equality that treats ``1 == 1.0`` but not ``True == 1`` as a match."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    return bool(stored == wanted)


@dataclass(frozen=True)
class RunQuery:
    """Which runs to keep: every given criterion must hold (``None`` means any)."""

    project: str | None = None
    tags: frozenset[str] = frozenset()
    status: frozenset[str] | None = None
    name: str | None = None
    """A glob pattern (``fnmatch``, case-sensitive) matched against the whole run name."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Run params that must equal these values; a callable value is a predicate."""
    since: int | None = None
    """Runs started at or after this time (ns)."""
    until: int | None = None
    """Runs started before this time (ns)."""

    @classmethod
    def build(
        cls,
        *,
        project: str | None = None,
        tags: Iterable[str] | None = None,
        status: str | Collection[str] | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
    ) -> RunQuery:
        """Check and normalise arguments; raises ``TypeError``/``ValueError`` naming a bad one."""
        if project is not None and not isinstance(project, str):
            raise TypeError(f"project must be a str, got {type(project).__qualname__}")
        if isinstance(tags, str):
            raise TypeError("tags must be a list of str, not a str (it would split into letters)")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str pattern, got {type(name).__qualname__}")
        if params is not None and not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping, got {type(params).__qualname__}")
        now = datetime.now(UTC)
        return cls(
            project=project,
            tags=_check_strings("tags", list(tags or ())) or frozenset(),
            status=_check_strings("status", status),
            name=name,
            params=dict(params or {}),
            since=None if since is None else to_ns(since, now=now),
            until=None if until is None else to_ns(until, now=now),
        )

    def matches(self, manifest: Manifest) -> bool:
        """Whether the run described by ``manifest`` passes every criterion."""
        started = manifest.started_at
        return (
            (self.project is None or manifest.project == self.project)
            and (self.status is None or manifest.status in self.status)
            and (not self.tags or self.tags.issubset(manifest.tags))
            and (self.since is None or started >= self.since)
            and (self.until is None or started < self.until)
            and (self.name is None or fnmatch.fnmatchcase(manifest.name, self.name))
            and all(
                _param_matches(manifest.params, key, wanted) for key, wanted in self.params.items()
            )
        )


def _param_matches(params: dict[str, Any], key: str, wanted: Any) -> bool:
    if key not in params:
        return False
    if callable(wanted):
        return bool(wanted(params[key]))
    return _same_value(params[key], wanted)


class MetricRow(NamedTuple):
    """One logged metric point of one run (the columns of :data:`METRIC_COLUMNS`)."""

    run_id: str
    run_name: str
    metric: str
    step: int
    value: float
    timestamp: datetime


def _iso_ns(ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else None


def _finite(value: float | None) -> float | None:
    """NaN becomes ``None`` (a missing cell); infinities stay."""
    return None if value is None or math.isnan(value) else value


def runs_table(runs: Iterable[RunRecord]) -> Table:
    """One row per run: fixed columns, then ``param.<name>``, ``metric.<name>.last|min|max``."""
    records = list(runs)
    table: Table = {column: [] for column in RUN_COLUMNS}
    param_names = sorted({key for record in records for key in record.params})
    metric_names = sorted({key for record in records for key in record.manifest.metrics})
    extra: Table = {f"param.{key}": [] for key in param_names}
    for key in metric_names:
        for stat in ("last", "min", "max"):
            extra[f"metric.{key}.{stat}"] = []
    for record in records:
        manifest = record.manifest
        table["run_id"].append(record.id)
        table["name"].append(record.name)
        table["project"].append(record.project)
        table["status"].append(record.status)
        table["error"].append(record.error)
        table["tags"].append(",".join(record.tags))
        table["started_at"].append(record.started_at)
        table["ended_at"].append(record.ended_at)
        table["duration"].append(record.duration)
        table["last_seen"].append(record.last_seen)
        table["events"].append(manifest.events)
        table["tasks"].append(manifest.tasks)
        table["crashed"].append(record.crashed)
        provenance = record.provenance
        table["git_commit"].append(None if provenance is None else provenance.git_commit)
        table["git_dirty"].append(None if provenance is None else provenance.git_dirty)
        params = record.params
        for key in param_names:
            extra[f"param.{key}"].append(_cell(params.get(key)))
        for key in metric_names:
            summary = manifest.metrics.get(key)
            extra[f"metric.{key}.last"].append(_finite(summary.last) if summary else None)
            extra[f"metric.{key}.min"].append(_finite(summary.min) if summary else None)
            extra[f"metric.{key}.max"].append(_finite(summary.max) if summary else None)
    table.update(extra)
    return table


def _cell(value: Any) -> Any:
    """A scalar stays as it is; anything else becomes JSON text, so a column keeps one type."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _json.encode(value).decode()


def metrics_table(runs: Iterable[RunRecord], names: Collection[str] | None = None) -> Table:
    """One row per metric point of each run (task metrics mirrored as ``label.name``)."""
    wanted = _check_strings("names", names)
    table: Table = {column: [] for column in METRIC_COLUMNS}
    run_ids, run_names, metric_col = table["run_id"], table["run_name"], table["metric"]
    steps, values, stamps = table["step"], table["value"], table["timestamp"]
    for record in runs:
        for metric, points in record.metrics.items():
            if wanted is not None and metric not in wanted:
                continue
            count = len(points)
            run_ids.extend([record.id] * count)
            run_names.extend([record.name] * count)
            metric_col.extend([metric] * count)
            steps.extend([point.step for point in points])
            values.extend([point.value for point in points])
            stamps.extend([point.ts for point in points])
    # Timestamps stay ns integers here: exports convert the whole column at once, which is
    # far cheaper than a datetime object per point of a million-point run.
    return table


def tasks_table(
    runs: Iterable[RunRecord], tasks: Callable[[RunRecord], Iterable[TaskRecord]] | None = None
) -> Table:
    """One row per task; inputs, outputs, params and final metric values as JSON text."""
    table: Table = {column: [] for column in TASK_COLUMNS}
    for record in runs:
        chosen = tasks(record) if tasks is not None else record.all_tasks
        for task in chosen:
            table["run_id"].append(record.id)
            table["task_id"].append(task.id)
            table["parent_id"].append(task.parent_id)
            table["depth"].append(task.depth)
            table["name"].append(task.name)
            table["label"].append(task.label)
            table["status"].append(task.status)
            table["error"].append(task.error)
            table["started_at"].append(task.started_at)
            table["ended_at"].append(task.ended_at)
            table["duration"].append(task.duration)
            table["inputs"].append(_json_text(task.inputs))
            table["outputs"].append(_json_text(task.outputs))
            table["params"].append(_json_text(task.params))
            table["metrics"].append(
                _json_text(
                    {key: points[-1].value for key, points in task.metrics.items() if points}
                )
            )
    return table


def _json_text(value: Any) -> str:
    return _json.encode(to_builtins(value)).decode()
