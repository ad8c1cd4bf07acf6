"""The typed events strikes records: the contract between writers, sinks and readers.

Every event is a frozen, array-like ``msgspec.Struct`` tagged by its ``kind``. They form
one tagged union, :data:`AnyEvent`, which encodes and decodes with one reusable
encoder/decoder pair (:func:`encode_events`, :func:`decode_events`).

Schema evolution rules (see ``docs/events.md``), because events are positional arrays:

* a new field is only ever appended at the end of a type, and always has a default;
* fields never change type, never move and are never removed;
* a new kind of event gets a new tag; readers skip tags they do not know;
* :data:`SCHEMA_VERSION` is bumped with every change and recorded with each run.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "SCHEMA_VERSION",
    "AnyEvent",
    "Artifact",
    "ArtifactFile",
    "Blob",
    "Error",
    "Event",
    "Input",
    "Metric",
    "Output",
    "Param",
    "Provenance",
    "RunFinished",
    "RunProvenance",
    "RunStarted",
    "Tag",
    "TaskFinished",
    "TaskStarted",
    "decode_events",
    "encode_events",
]

SCHEMA_VERSION = 2
"""Version of the event schema written by this release (2 added ``provenance``)."""


class Event(
    msgspec.Struct, frozen=True, array_like=True, gc=False, omit_defaults=True, tag_field="kind"
):
    """Fields every event carries, in this order, before its own."""

    run_id: str
    """The run (32 hex digits, also the OpenTelemetry trace id)."""
    span_id: str
    """The run's or task's span (16 hex digits) the event belongs to."""
    parent_id: str
    """The parent span, or ``""`` for the run's own span."""
    seq: int
    """Monotonic sequence number within the producer (one writer of one run)."""
    ts: int
    """Wall-clock time in nanoseconds since the epoch."""


class RunStarted(Event, frozen=True, tag="run_started"):
    """A run began; written once, by the process that opened it."""

    name: str
    project: str
    tags: tuple[str, ...] = ()
    attributes: dict[str, Any] = {}
    schema: int = SCHEMA_VERSION
    pid: int = 0
    host: str = ""


class RunFinished(Event, frozen=True, tag="run_finished"):
    """A run ended: ``status`` is ``"finished"`` or ``"failed"``."""

    status: str
    error: str | None = None
    stats: dict[str, int] = {}


class TaskStarted(Event, frozen=True, tag="task_started"):
    """A task span began under ``parent_id``."""

    name: str
    label: str
    tags: tuple[str, ...] = ()
    attributes: dict[str, Any] = {}


class TaskFinished(Event, frozen=True, tag="task_finished"):
    """A task span ended; ``failed`` with ``error`` text when it raised."""

    failed: bool = False
    error: str | None = None


class Param(Event, frozen=True, tag="param"):
    """A parameter (a configuration value) set on a run or task."""

    name: str
    value: Any = None


class Metric(Event, frozen=True, tag="metric"):
    """One metric point; its value is already aggregated when an aggregation was asked."""

    name: str
    value: float
    step: int = 0
    attributes: dict[str, Any] | None = None


class Tag(Event, frozen=True, tag="tag"):
    """Tags added to a run or task while it is open."""

    tags: tuple[str, ...]


class Input(Event, frozen=True, tag="input"):
    """An input value: inline in ``value`` when small, else stored by ``ref`` (a hash)."""

    name: str
    value: Any = None
    ref: str | None = None
    type_name: str = ""


class Output(Event, frozen=True, tag="output"):
    """An output value: inline in ``value`` when small, else stored by ``ref`` (a hash)."""

    name: str
    value: Any = None
    ref: str | None = None
    type_name: str = ""


class ArtifactFile(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One file of an artifact: its path relative to the artifact root, hash and size."""

    path: str
    hash: str
    size: int


class Artifact(Event, frozen=True, tag="artifact"):
    """A file or directory stored by content; ``files`` lists every file it holds."""

    name: str
    source: str
    is_dir: bool
    files: tuple[ArtifactFile, ...] = ()


class Error(Event, frozen=True, tag="error"):
    """An exception raised inside a run or task, with its traceback text."""

    type: str
    message: str
    traceback: str = ""


class Provenance(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a run came from: code, command, interpreter, machine, packages, environment."""

    git_commit: str | None = None
    """The full hash of HEAD; ``None`` outside a repository or before the first commit."""
    git_branch: str | None = None
    """The checked-out branch; ``None`` when HEAD is detached."""
    git_dirty: bool | None = None
    """Whether tracked files differ from HEAD (staged or not; untracked files do not count)."""
    git_diff_hash: str | None = None
    """The sha256 of ``git diff HEAD --binary`` when dirty."""
    git_remote: str | None = None
    """The URL of ``origin`` (else the first remote), credentials stripped."""
    command: list[str] | None = None
    """``sys.argv``, with secret-looking option values masked and URL credentials stripped."""
    entry_point: str | None = None
    """The script's absolute path, or ``-m module`` for ``python -m``."""
    cwd: str | None = None
    """The working directory."""
    python_version: str | None = None
    """For example ``3.11.7``."""
    python_implementation: str | None = None
    """For example ``CPython``."""
    platform: str | None = None
    """``platform.platform()``, for example ``Linux-6.1.0-x86_64-with-glibc2.36``."""
    hostname: str | None = None
    """The machine's host name."""
    pid: int | None = None
    """The process id of the process that captured."""
    packages_hash: str | None = None
    """The sha256 of the frozen package list blob."""
    env: dict[str, str] = {}
    """Allow-listed environment variables, values with URL credentials stripped."""


class RunProvenance(Event, frozen=True, tag="provenance"):
    """Where the run came from; written once, by the process that opened the run.

    Captured off the caller's thread after ``run_started``, so it follows that event
    (usually in the run's second batch, at the latest in its last). The package list
    and the git diff are objects, referred to by ``packages_hash`` and ``git_diff_hash``.
    """

    provenance: Provenance


class Blob(msgspec.Struct, frozen=True, gc=False):
    """Content stored once by its sha256 ``hash``: bytes in memory or a file to copy.

    Blobs travel beside events, never inside a segment: a sink that keeps objects
    (the local store) writes each one once under its hash.
    """

    hash: str
    data: bytes | None = None
    source: str | None = None


AnyEvent = (
    RunStarted
    | RunFinished
    | TaskStarted
    | TaskFinished
    | Param
    | Metric
    | Tag
    | Input
    | Output
    | Artifact
    | Error
    | RunProvenance
)
"""The tagged union of every event kind."""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[AnyEvent])
_one_decoder = msgspec.msgpack.Decoder(AnyEvent)
_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])


def encode_events(events: list[Event]) -> bytes:
    """Encode a list of events to one msgpack array."""
    return _encoder.encode(events)


def decode_events(data: bytes | memoryview) -> list[Event]:
    """Decode a msgpack array of events, skipping kinds this release does not know.

    Raises ``msgspec.DecodeError`` when ``data`` is not a msgpack array.
    """
    try:
        return list(_decoder.decode(data))
    except msgspec.ValidationError:
        pass
    # A newer writer's kinds (or one bad event) must not hide the events we can read.
    events: list[Event] = []
    for raw in _raw_list_decoder.decode(data):
        try:
            events.append(_one_decoder.decode(raw))
        except msgspec.ValidationError:
            continue
    return events
