"""Reading the local store: ``open_store()``, ``Store``, ``RunRecord`` and ``TaskRecord``."""

from __future__ import annotations

import fnmatch
import heapq
import math
import os
import shutil
import time
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import msgspec

from strikes._ids import short_ids
from strikes._values import MetricPoint, load_blob
from strikes.events import (
    Artifact,
    ArtifactFile,
    Error,
    Event,
    Input,
    Metric,
    Output,
    Param,
    Provenance,
    RunFinished,
    RunProvenance,
    RunStarted,
    Tag,
    TaskFinished,
    TaskStarted,
    decode_events,
)
from strikes.runtime.state import RunState
from strikes.store.export import Backend, Format, to_frame, write_table
from strikes.store.layout import StoreLayout, default_store_dir, validate_run_id
from strikes.store.manifest import Manifest, decode_manifest, manifest_from_state
from strikes.store.query import (
    MetricRow,
    RunQuery,
    Table,
    TimeBound,
    metrics_table,
    runs_table,
    tasks_table,
)
from strikes.store.segments import FRAME_HEADER, MAGIC, ReadReport, iter_frames

__all__ = [
    "DEFAULT_STALE_AFTER",
    "ArtifactRecord",
    "ErrorRecord",
    "EventTail",
    "GarbageReport",
    "MissingObject",
    "RunRecord",
    "Store",
    "TaskRecord",
    "open_store",
    "read_run_events",
]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DEFAULT_STALE_AFTER = 60.0
"""Seconds of silence after which a ``running`` run counts as crashed, unless the store
says otherwise (``Store(stale_after=...)``, ``$STRIKES_STALE_AFTER``); a run whose
heartbeat interval is longer than a third of it gets three of its intervals."""
_STALE_HEARTBEATS = 3


def _check_stale_after(value: object, name: str = "stale_after") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__qualname__}")
    seconds = float(value)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return seconds


def _stale_after_from_env() -> float | None:
    raw = os.environ.get("STRIKES_STALE_AFTER")
    if not raw:
        return None
    try:
        return _check_stale_after(float(raw), "STRIKES_STALE_AFTER")
    except ValueError as exc:
        raise ValueError(
            f"environment variable STRIKES_STALE_AFTER={raw!r} is invalid: {exc}"
        ) from None


def _datetime(ns: int | None) -> datetime | None:
    # Truncated to the microsecond in integers: a float would sometimes round up, and a
    # run's own start time would then fall outside `since=run.started_at`.
    return _EPOCH + timedelta(microseconds=ns // 1000) if ns else None


@dataclass(frozen=True)
class MissingObject:
    """Stands for a value whose object file is not in the store."""

    hash: str


@dataclass
class ErrorRecord:
    """An exception recorded in a run or task."""

    type: str
    message: str
    traceback: str
    span_id: str
    timestamp: datetime | None


@dataclass
class ArtifactRecord:
    """A stored file or directory; ``object_path(file)`` finds each file's content."""

    name: str
    source: str
    is_dir: bool
    files: tuple[ArtifactFile, ...]
    span_id: str
    layout: StoreLayout = field(repr=False)

    def object_path(self, file: ArtifactFile | None = None) -> Path:
        """Where the content of ``file`` (default: the only file) is stored."""
        chosen = file if file is not None else self.files[0]
        return self.layout.object(chosen.hash)


@dataclass
class TaskRecord:
    """A task as stored: identity, status, values, metrics and children."""

    id: str
    name: str
    label: str
    parent_id: str
    failed: bool = False
    error: str | None = None
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, list[MetricPoint]] = field(default_factory=dict)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    started_ns: int = 0
    """Start time in ns since the epoch (0: unknown); ``started_at`` as a datetime."""
    ended_ns: int = 0
    """End time in ns since the epoch (0: still running); ``ended_at`` as a datetime."""
    finished: bool = False
    run_id: str = ""
    depth: int = 0
    """0 for a top-level task, one more per level below."""

    @property
    def started_at(self) -> datetime | None:
        """When the task started, as an aware UTC datetime (made when asked: loads stay fast)."""
        return _datetime(self.started_ns)

    @property
    def ended_at(self) -> datetime | None:
        """When the task ended, as an aware UTC datetime; ``None`` while it runs."""
        return _datetime(self.ended_ns)

    @property
    def status(self) -> str:
        """``running`` until it ends, then ``failed`` or ``finished``."""
        if not self.finished:
            return "running"
        return "failed" if self.failed else "finished"

    @property
    def output(self) -> Any:
        """The task's return value (its ``output`` output), if recorded."""
        return self.outputs.get("output")

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, if it ended."""
        if not self.started_ns or not self.ended_ns:
            return None
        return (self.ended_ns // 1000 - self.started_ns // 1000) / 1e6

    @property
    def all_tasks(self) -> list[TaskRecord]:
        """Every task below this one, depth first."""
        found: list[TaskRecord] = []
        for child in self.tasks:
            found.append(child)
            found.extend(child.all_tasks)
        return found


def read_run_events(
    layout: StoreLayout, run_id: str, report: ReadReport | None = None
) -> list[Event]:
    """All events of a run from every writer's segments, merged by time then sequence."""
    directory = layout.segments(run_id)
    try:
        names = sorted(os.listdir(directory))  # noqa: PTH208 - plain names, no Path per entry
    except FileNotFoundError:
        return []
    report = report if report is not None else ReadReport()
    per_writer: dict[str, list[Event]] = {}
    for file_name in names:
        if not file_name.endswith(".seg"):
            continue
        writer = file_name.rsplit(".", 2)[0]
        data = (directory / file_name).read_bytes()
        events = per_writer.setdefault(writer, [])
        for payload in iter_frames(data, report):
            try:
                events.extend(decode_events(payload))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                report.corrupt_frames += 1
                report.notes.append(f"{file_name}: {exc}")
    streams = [events for events in per_writer.values() if events]
    if len(streams) == 1:
        return streams[0]
    return list(heapq.merge(*streams, key=lambda event: (event.ts, event.seq)))


class RunRecord:
    """A run as stored. Identity and summary come from the manifest; the rest loads on access."""

    def __init__(
        self, layout: StoreLayout, manifest: Manifest, stale_after: float | None = None
    ) -> None:
        self._layout = layout
        self._manifest = manifest
        self._stale_after = stale_after
        self.id = manifest.id
        self.read_report = ReadReport()

    def __repr__(self) -> str:
        return (
            f"RunRecord(id={self.id!r}, name={self.name!r}, "
            f"project={self.project!r}, status={self.status!r})"
        )

    # -- from the manifest (cheap) -------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The manifest the run was listed from (summaries of run metrics, counts, host, pid)."""
        return self._manifest

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; ``None`` while running."""
        started, ended = self._manifest.started_at, self.ended_at
        if not started or ended is None:
            return None
        return ended.timestamp() - started / 1e9

    @property
    def name(self) -> str:
        """The run's name."""
        return self._manifest.name

    @property
    def project(self) -> str:
        """The run's project."""
        return self._manifest.project

    @property
    def attributes(self) -> dict[str, Any]:
        """Attributes given to ``run(...)``."""
        return self._manifest.attributes

    @property
    def started_at(self) -> datetime | None:
        """When the run started."""
        return _datetime(self._manifest.started_at)

    @property
    def ended_at(self) -> datetime | None:
        """When the run ended (``None`` while running)."""
        if "_loaded" in self.__dict__:
            return _datetime(self._loaded.ended_at)
        return _datetime(self._manifest.ended_at)

    @property
    def last_seen(self) -> datetime | None:
        """When the run's owner was last heard of: its last stored event or heartbeat."""
        return _datetime(self._last_seen_ns)

    @property
    def _last_seen_ns(self) -> int:
        if "_loaded" in self.__dict__:
            return self._loaded.last_seen or self._manifest.started_at
        return self._manifest.last_seen or self._manifest.started_at

    @property
    def stale_after(self) -> float:
        """Seconds of silence after which this run, if still ``running``, counts as crashed.

        The store's ``stale_after`` when given, else :data:`DEFAULT_STALE_AFTER` or three
        of the run's heartbeat intervals, whichever is longer.
        """
        if self._stale_after is not None:
            return self._stale_after
        return max(DEFAULT_STALE_AFTER, _STALE_HEARTBEATS * self._manifest.heartbeat)

    @property
    def crashed(self) -> bool:
        """Whether the run is ``running`` but silent for longer than :attr:`stale_after`.

        An open run's owner writes a heartbeat (``last_seen``) every few seconds even when
        nothing is logged, so a long silence means its process died without ending the
        run (``kill -9``, a lost machine). The status stays ``running``: this is derived at
        read time, against this machine's clock.
        """
        if self.status != "running":
            return False
        last = self._last_seen_ns
        return bool(last) and time.time() - last / 1e9 > self.stale_after

    @property
    def status(self) -> str:
        """``running``, ``finished`` or ``failed``."""
        if "_loaded" in self.__dict__:
            return self._loaded.status
        return self._manifest.status

    @property
    def error(self) -> str | None:
        """``Type: message`` of the exception that failed the run."""
        if "_loaded" in self.__dict__:
            return self._loaded.error
        return self._manifest.error

    @cached_property
    def _many_writers(self) -> bool:
        # Writers of other processes (continue_run) are not in the owner's manifest.
        try:
            names = os.listdir(self._layout.segments(self.id))  # noqa: PTH208 - plain names
        except FileNotFoundError:
            return False
        return len({name.rsplit(".", 2)[0] for name in names if name.endswith(".seg")}) > 1

    @property
    def tags(self) -> list[str]:
        """The run's tags, given and added."""
        if "_loaded" in self.__dict__ or self._many_writers:
            return self._loaded.tags
        return self._manifest.tags

    @property
    def params(self) -> dict[str, Any]:
        """Parameters set on the run."""
        if "_loaded" in self.__dict__ or self._many_writers:
            return self._loaded.params
        return self._manifest.params

    @property
    def provenance(self) -> Provenance | None:
        """Where the run came from (git, command, interpreter, packages, environment).

        ``None`` for runs recorded with provenance off, or by a release without it.
        """
        found = self._manifest.provenance
        if found is None and (self._manifest.status == "running" or "_loaded" in self.__dict__):
            # The manifest of an open run may not have caught up with the event yet.
            return self._loaded.provenance
        return found

    @cached_property
    def packages(self) -> dict[str, str] | None:
        """Installed distributions when the run started, ``{name: version}``.

        Read from the package-list object; ``None`` when the run has no package list or
        the object is not in the store.
        """
        data = self._object(None if self.provenance is None else self.provenance.packages_hash)
        if data is None:
            return None
        found: dict[str, str] = {}
        for line in data.decode(errors="replace").splitlines():
            name, sep, version = line.partition("==")
            if sep:
                found[name] = version
        return found

    @property
    def git_diff(self) -> bytes | None:
        """``git diff HEAD --binary`` at run start, when it was kept (``git_diff=True``)."""
        return self._object(None if self.provenance is None else self.provenance.git_diff_hash)

    def _object(self, digest: str | None) -> bytes | None:
        if digest is None:
            return None
        try:
            return self._layout.object(digest).read_bytes()
        except (OSError, ValueError):
            return None

    # -- from the events (loaded once, on first use) --------------------------------

    @cached_property
    def _loaded(self) -> _Loaded:
        events = read_run_events(self._layout, self.id, self.read_report)
        return _Loaded.build(self._layout, self._manifest, events)

    @property
    def metrics(self) -> dict[str, list[MetricPoint]]:
        """Run metrics by name, in logging order; task metrics mirrored as ``<label>.<name>``."""
        return self._loaded.metrics

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs logged on the run itself."""
        return self._loaded.root.inputs

    @property
    def outputs(self) -> dict[str, Any]:
        """Outputs logged on the run itself."""
        return self._loaded.root.outputs

    @property
    def artifacts(self) -> list[ArtifactRecord]:
        """Artifacts logged on the run itself."""
        return self._loaded.root.artifacts

    @property
    def tasks(self) -> list[TaskRecord]:
        """Top-level tasks, in start order."""
        return self._loaded.root.tasks

    @property
    def all_tasks(self) -> list[TaskRecord]:
        """Every task of the run, depth first."""
        return self._loaded.root.all_tasks

    @property
    def errors(self) -> list[ErrorRecord]:
        """Every error recorded in the run and its tasks."""
        return self._loaded.errors

    @property
    def traceback(self) -> str | None:
        """The traceback of the exception that failed the run."""
        for error in self._loaded.errors:
            if error.span_id == self._loaded.root.id:
                return error.traceback
        return None

    @property
    def events(self) -> list[Event]:
        """Every stored event of the run, merged across writers."""
        return self._loaded.events

    @property
    def stats(self) -> dict[str, int]:
        """``events`` read back, ``dropped`` by backpressure, and the writer's final counts."""
        loaded = self._loaded
        stats = dict(loaded.stats)
        stats["events"] = len(loaded.events)
        stats.setdefault("dropped", 0)
        stats["torn_bytes"] = self.read_report.torn_bytes
        stats["corrupt_frames"] = self.read_report.corrupt_frames
        return stats

    def task(self, name: str) -> TaskRecord:
        """The first task called ``name``; raises ``KeyError`` if none."""
        for task in self.all_tasks:
            if task.name == name:
                return task
        raise KeyError(name)


class _Loaded:
    """Everything folded from a run's events."""

    def __init__(self, events: list[Event], root: TaskRecord) -> None:
        self.events = events
        self.root = root
        self.metrics: dict[str, list[MetricPoint]] = {}
        self.errors: list[ErrorRecord] = []
        self.status = "running"
        self.error: str | None = None
        self.tags: list[str] = []
        self.params: dict[str, Any] = {}
        self.ended_at: int | None = None
        self.last_seen = 0
        self.stats: dict[str, int] = {}
        self.provenance: Provenance | None = None

    @classmethod
    def build(  # noqa: C901, PLR0912, PLR0915 - one dispatch over every event kind
        cls, layout: StoreLayout, manifest: Manifest, events: list[Event]
    ) -> _Loaded:
        root = TaskRecord(id="", name=manifest.name, label="", parent_id="")
        loaded = cls(events, root)
        spans: dict[str, TaskRecord] = {}
        run_metrics = loaded.metrics

        def value_of(event: Input | Output) -> Any:
            if event.ref is None:
                return event.value
            try:
                return load_blob(layout.object(event.ref).read_bytes())
            except (OSError, ValueError, msgspec.DecodeError):
                return MissingObject(event.ref)

        for event in events:
            kind = type(event)
            if kind is Metric:
                m: Metric = event  # type: ignore[assignment]
                point = MetricPoint(m.value, m.step, m.ts)
                task = spans.get(m.span_id)
                if task is None:  # the run's own span, or a span we never saw start
                    run_metrics.setdefault(m.name, []).append(point)
                else:
                    task.metrics.setdefault(m.name, []).append(point)
                    if task.label:
                        run_metrics.setdefault(f"{task.label}.{m.name}", []).append(point)
                continue
            target = spans.get(event.span_id, root)
            match event:
                # Most frequent first: a class pattern that misses costs ~0.13 us.
                case Input():
                    target.inputs[event.name] = value_of(event)
                case Output():
                    target.outputs[event.name] = value_of(event)
                case TaskStarted():
                    parent = spans.get(event.parent_id)
                    record = TaskRecord(
                        id=event.span_id,
                        name=event.name,
                        label=event.label,
                        parent_id=event.parent_id,
                        tags=list(event.tags),
                        attributes=dict(event.attributes),
                        started_ns=event.ts,
                        run_id=manifest.id,
                        depth=0 if parent is None else parent.depth + 1,
                    )
                    spans[event.span_id] = record
                    (root if parent is None else parent).tasks.append(record)
                case TaskFinished():
                    target.failed = event.failed
                    target.error = event.error
                    target.ended_ns = event.ts
                    target.finished = True
                case Param():
                    target.params[event.name] = event.value
                case Tag():
                    target.tags.extend(t for t in event.tags if t not in target.tags)
                case Error():
                    loaded.errors.append(
                        ErrorRecord(
                            event.type,
                            event.message,
                            event.traceback,
                            event.span_id,
                            _datetime(event.ts),
                        )
                    )
                case Artifact():
                    target.artifacts.append(
                        ArtifactRecord(
                            event.name,
                            event.source,
                            event.is_dir,
                            event.files,
                            event.span_id,
                            layout,
                        )
                    )
                case RunStarted():
                    root.id = event.span_id
                    root.started_ns = event.ts
                    root.tags.extend(t for t in event.tags if t not in root.tags)
                case RunFinished():
                    loaded.status = event.status
                    loaded.error = event.error
                    loaded.ended_at = event.ts
                    loaded.stats = dict(event.stats)
                case RunProvenance():
                    loaded.provenance = event.provenance
                case _:
                    pass
        loaded.params = root.params
        loaded.tags = root.tags
        # The manifest's last_seen may be a heartbeat, newer than any event.
        loaded.last_seen = max(events[-1].ts if events else 0, manifest.last_seen)
        if loaded.status == "running" and manifest.status != "running":
            loaded.status, loaded.error = manifest.status, manifest.error
        return loaded


class Store:
    """A local store directory, read-only.

    ``stale_after`` is the silence, in seconds, after which a ``running`` run counts as
    crashed (``RunRecord.crashed``); default ``$STRIKES_STALE_AFTER``, else
    :data:`DEFAULT_STALE_AFTER` or three of the run's heartbeat intervals.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, stale_after: float | None = None
    ) -> None:
        self.layout = StoreLayout(path if path is not None else default_store_dir())
        self.stale_after = (
            _check_stale_after(stale_after) if stale_after is not None else _stale_after_from_env()
        )

    def _record(self, manifest: Manifest) -> RunRecord:
        return RunRecord(self.layout, manifest, self.stale_after)

    @property
    def path(self) -> Path:
        """The store's root directory."""
        return self.layout.root

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _manifest(self, run_id: str) -> Manifest | None:
        try:
            return decode_manifest(self.layout.manifest(run_id).read_bytes())
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    def _rebuild_manifest(self, run_id: str) -> Manifest | None:
        """A manifest recovered from the segments, for a run whose manifest is lost."""
        events = read_run_events(self.layout, run_id)
        started = next((e for e in events if type(e) is RunStarted), None)
        if started is None:
            return None
        # Fold the events the way the writer did, so params, tags and metric summaries
        # come back too, not only the run's identity.
        state = RunState(run_id, owner=True)
        state.fold(events)
        return manifest_from_state(state, pid=started.pid, host=started.host)

    def run(self, run_id: str) -> RunRecord:
        """The run with ``run_id``; raises ``KeyError`` if the store has no such run."""
        validate_run_id(run_id)
        manifest = self._manifest(run_id) or self._rebuild_manifest(run_id)
        if manifest is None:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return self._record(manifest)

    def runs(
        self,
        project: str | None = None,
        tags: list[str] | tuple[str, ...] | None = None,
        *,
        status: str | Collection[str] | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first.

        ``project`` and ``status`` match exactly (``status`` may be a list), ``tags`` must
        all be present, ``name`` is a glob pattern, ``params`` maps param names to the value
        they must equal (or a predicate), ``since``/``until`` bound the start time (an aware
        datetime, a timedelta before now, or epoch seconds). Raises ``TypeError`` or
        ``ValueError`` naming a bad argument.
        """
        query = RunQuery.build(
            project=project,
            tags=tags,
            status=status,
            name=name,
            params=params,
            since=since,
            until=until,
        )
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        found = [
            self._record(manifest) for manifest in self._manifests() if query.matches(manifest)
        ]
        found.sort(key=lambda record: (record._manifest.started_at, record.id), reverse=True)
        return found if limit is None else found[:limit]

    def short_ids(self) -> dict[str, str]:
        """Every stored run's shortest unique id prefix (16 digits at least), by run id.

        What to show people: :meth:`resolve` takes it back to the run.
        """
        try:
            entries = os.listdir(self.layout.runs)  # noqa: PTH208 - names only, no manifest read
        except FileNotFoundError:
            return {}
        return short_ids(entry for entry in entries if len(entry) == 32)

    def _manifests(self) -> Iterator[Manifest]:
        """Every run's manifest, rebuilt from its segments when it is missing or unreadable."""
        try:
            entries = os.listdir(self.layout.runs)  # noqa: PTH208 - 10,000s of names, no Path each
        except FileNotFoundError:
            return
        for run_id in entries:
            if len(run_id) != 32:  # cheap pre-check before the regex; skips temp files
                continue
            try:
                validate_run_id(run_id)
            except ValueError:
                continue
            manifest = self._manifest(run_id) or self._rebuild_manifest(run_id)
            if manifest is not None:
                yield manifest

    def resolve(self, ref: str) -> RunRecord:
        """The run named by ``ref``: a run id, a unique id prefix, or a run name (newest wins).

        Raises ``KeyError`` when nothing matches and ``LookupError`` when a prefix or a
        name is ambiguous.
        """
        if not isinstance(ref, str) or not ref:
            raise KeyError("a run reference must be a non-empty str")
        if len(ref) == 32:
            try:
                return self.run(ref)
            except (KeyError, ValueError):
                pass
        manifests = list(self._manifests())
        if all(c in "0123456789abcdef" for c in ref):
            by_prefix = [m for m in manifests if m.id.startswith(ref)]
            if len(by_prefix) == 1:
                return self._record(by_prefix[0])
            if len(by_prefix) > 1:
                ids = ", ".join(sorted(short_ids(m.id for m in by_prefix).values())[:5])
                raise LookupError(f"run id prefix {ref!r} is ambiguous: {ids}")
        by_name = sorted(
            (m for m in manifests if m.name == ref), key=lambda m: m.started_at, reverse=True
        )
        if not by_name:
            raise KeyError(f"no run with id, id prefix or name {ref!r} in {self.path}")
        if len(by_name) > 1 and len({m.id for m in by_name}) > 1:
            shown = short_ids(m.id for m in by_name)
            ids = ", ".join(shown[m.id] for m in by_name[:5])
            raise LookupError(
                f"run name {ref!r} is ambiguous ({len(by_name)} runs: {ids}); use an id prefix"
            )
        return self._record(by_name[0])

    def _select(
        self, runs: Iterable[RunRecord | str] | None, filters: dict[str, Any]
    ) -> list[RunRecord]:
        if runs is None:
            return self.runs(**filters)
        if filters:
            raise TypeError("pass either runs or filters, not both")
        if isinstance(runs, (str, RunRecord)):
            runs = [runs]
        return [run if isinstance(run, RunRecord) else self.resolve(run) for run in runs]

    def metrics(
        self,
        runs: Iterable[RunRecord | str] | None = None,
        *,
        names: str | Collection[str] | None = None,
        **filters: Any,
    ) -> list[MetricRow]:
        """Every metric point of ``runs`` (default: runs matching ``filters``, see :meth:`runs`).

        ``names`` keeps only those metrics. Rows come run by run, each metric in logging order.
        """
        wanted = [names] if isinstance(names, str) else names
        table = metrics_table(self._select(runs, filters), wanted)
        stamps = [_datetime(ns) or datetime.fromtimestamp(0, tz=UTC) for ns in table["timestamp"]]
        return list(
            map(
                MetricRow._make,
                zip(
                    table["run_id"],
                    table["run_name"],
                    table["metric"],
                    table["step"],
                    table["value"],
                    stamps,
                    strict=True,
                ),
            )
        )

    def tasks(
        self,
        runs: Iterable[RunRecord | str] | None = None,
        *,
        task_name: str | None = None,
        label: str | None = None,
        task_status: str | None = None,
        **filters: Any,
    ) -> list[TaskRecord]:
        """Tasks of ``runs`` (default: the runs matching ``filters``), depth first, run by run.

        ``task_name`` is a glob pattern on the task name, ``label`` matches exactly and
        ``task_status`` is ``running``, ``finished`` or ``failed``. Each task's ``run_id``
        says which run it belongs to.
        """
        return [
            task
            for record in self._select(runs, filters)
            for task in record.all_tasks
            if (task_name is None or fnmatch.fnmatchcase(task.name, task_name))
            and (label is None or task.label == label)
            and (task_status is None or task.status == task_status)
        ]

    def table(
        self,
        kind: Literal["runs", "metrics", "tasks"],
        runs: Iterable[RunRecord | str] | None = None,
        *,
        names: Collection[str] | None = None,
        **filters: Any,
    ) -> Table:
        """The ``runs``, ``metrics`` or ``tasks`` table as columns (see ``docs/reading.md``)."""
        selected = self._select(runs, filters)
        if kind == "runs":
            return runs_table(selected)
        if kind == "metrics":
            return metrics_table(selected, [names] if isinstance(names, str) else names)
        if kind == "tasks":
            return tasks_table(selected)
        raise ValueError(f"kind must be 'runs', 'metrics' or 'tasks', got {kind!r}")

    def dataframe(
        self,
        kind: Literal["runs", "metrics", "tasks"] = "runs",
        runs: Iterable[RunRecord | str] | None = None,
        *,
        backend: Backend = "pandas",
        names: Collection[str] | None = None,
        **filters: Any,
    ) -> Any:
        """The ``kind`` table as a pandas (default) or polars DataFrame (needs the extra)."""
        return to_frame(self.table(kind, runs, names=names, **filters), backend)

    def export(
        self,
        kind: Literal["runs", "metrics", "tasks"],
        path: str | os.PathLike[str],
        runs: Iterable[RunRecord | str] | None = None,
        *,
        fmt: Format | None = None,
        names: Collection[str] | None = None,
        **filters: Any,
    ) -> Path:
        """Write the ``kind`` table to ``path``: CSV, Parquet or JSON lines (default: by suffix)."""
        return write_table(self.table(kind, runs, names=names, **filters), path, fmt)

    # -- the two writes the read side makes: removing runs and unreferenced objects -----

    def remove(self, run: RunRecord | str, *, force: bool = False) -> RunRecord:
        """Delete a run's directory; raises ``ValueError`` for a running run unless ``force``.

        Objects the run referenced stay until :meth:`collect_garbage`.
        """
        record = run if isinstance(run, RunRecord) else self.resolve(run)
        if record.status == "running" and not force:
            raise ValueError(f"run {record.id} ({record.name}) is still running; pass force=True")
        shutil.rmtree(self.layout.run_dir(record.id))
        return record

    def referenced_objects(self) -> set[str]:
        """Hashes of every object an event of any run points to."""
        found: set[str] = set()
        for manifest in self._manifests():
            for event in read_run_events(self.layout, manifest.id):
                kind = type(event)
                if kind is Input or kind is Output:
                    ref = event.ref  # type: ignore[attr-defined]
                    if ref:
                        found.add(ref)
                elif kind is Artifact:
                    found.update(file.hash for file in event.files)  # type: ignore[attr-defined]
                elif kind is RunProvenance:
                    provenance: Provenance = event.provenance  # type: ignore[attr-defined]
                    found.update(
                        digest
                        for digest in (provenance.packages_hash, provenance.git_diff_hash)
                        if digest
                    )
        return found

    def collect_garbage(self, *, grace: float = 3600.0, dry_run: bool = False) -> GarbageReport:
        """Delete objects no run references and stale temporary files older than ``grace`` s.

        The grace period protects a live writer, which stores an object just before the
        event that refers to it.
        """
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
        cutoff = time.time() - grace
        keep = self.referenced_objects()
        report = GarbageReport(dry_run=dry_run)
        candidates: list[Path] = []
        if self.layout.objects.is_dir():
            for bucket in self.layout.objects.iterdir():
                if bucket.is_dir():
                    candidates.extend(
                        path
                        for path in bucket.iterdir()
                        if path.name not in keep or path.name.startswith(".")
                    )
        if self.layout.runs.is_dir():
            candidates.extend(self.layout.runs.glob("*/.manifest.*.tmp"))
        for path in candidates:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if stat.st_mtime > cutoff:
                continue
            report.files += 1
            report.bytes += stat.st_size
            report.paths.append(path)
            if not dry_run:
                path.unlink(missing_ok=True)
        return report


@dataclass
class GarbageReport:
    """What :meth:`Store.collect_garbage` removed (or would remove, when ``dry_run``)."""

    dry_run: bool
    files: int = 0
    bytes: int = 0
    paths: list[Path] = field(default_factory=list)


class EventTail:
    """Reads a run's new events as writers append them: each :meth:`poll` returns what is new.

    A frame cut short (still being written) is left for the next poll, never skipped.
    """

    def __init__(self, layout: StoreLayout, run_id: str) -> None:
        self._directory = layout.segments(run_id)
        self._offsets: dict[str, int] = {}
        self.report = ReadReport()

    def poll(self) -> list[Event]:
        """Events appended since the last poll, ordered by time then sequence."""
        try:
            names = sorted(os.listdir(self._directory))  # noqa: PTH208 - plain names
        except FileNotFoundError:
            return []
        fresh: list[Event] = []
        for file_name in names:
            if file_name.endswith(".seg"):
                fresh.extend(self._read_new(file_name))
        fresh.sort(key=lambda event: (event.ts, event.seq))
        return fresh

    def _read_new(self, file_name: str) -> list[Event]:
        offset = self._offsets.get(file_name, 0)
        with (self._directory / file_name).open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
        if offset == 0:
            if len(data) < len(MAGIC):
                return []
            if not data.startswith(MAGIC):
                self._offsets[file_name] = len(data)  # not a segment: never look again
                return []
            data = data[len(MAGIC) :]
            offset = len(MAGIC)
        events: list[Event] = []
        position = 0
        header = FRAME_HEADER.size
        while position + header <= len(data):
            length, checksum = FRAME_HEADER.unpack_from(data, position)
            stop = position + header + length
            if stop > len(data):
                break
            payload = data[position + header : stop]
            position = stop
            if zlib.crc32(payload) != checksum:
                self.report.corrupt_frames += 1
                continue
            try:
                events.extend(decode_events(payload))
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.report.corrupt_frames += 1
        self._offsets[file_name] = offset + position
        return events


def open_store(
    path: str | os.PathLike[str] | None = None, *, stale_after: float | None = None
) -> Store:
    """Open the local store at ``path`` (default: ``$STRIKES_DIR`` or ``./.strikes``).

    ``stale_after``: seconds of silence after which a running run counts as crashed.
    """
    return Store(path, stale_after=stale_after)
