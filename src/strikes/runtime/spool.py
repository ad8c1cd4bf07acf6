"""The spool: batches a sink could not take, kept on local disk until they are re-sent.

When a sink still fails after every retry, the actor writes the batch here instead of
losing it::

    <store>/spool/<sink name>/<time ns>-<run_id>-<writer_id>.spool

One file per batch, written atomically (temporary file, then rename) and private to the
user. :func:`resend_spool` hands the files, oldest first, to a sink and deletes each one
the sink took. The sink's name is made safe before it becomes a directory name: nothing
a sink calls itself can reach outside the spool.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import structlog

from strikes.events import Blob, decode_events
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch, Sink
from strikes.sinks.local import LocalStore
from strikes.store.layout import DIR_MODE, FILE_MODE, validate_run_id
from strikes.store.segments import FRAME_HEADER, frame

__all__ = [
    "SPOOL_MAGIC",
    "SpoolReport",
    "SpooledBatch",
    "read_spool_file",
    "resend_spool",
    "resend_spool_async",
    "sink_spool_dir",
    "spool_files",
    "write_spool_file",
]

SPOOL_MAGIC = b"STRKSPL\x01"
"""The first bytes of every spool file (format version 1)."""

_log = structlog.get_logger("strikes.spool")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_SINK_DIR = 100
_counter = itertools.count()  # two batches spooled in the same nanosecond keep apart


class SpooledBatch(msgspec.Struct, frozen=True, array_like=True):
    """One batch as spooled: who it was for, and its events still encoded."""

    sink: str
    run_id: str
    writer_id: str
    owner: bool
    final: bool
    events: bytes
    """The batch's events as one msgpack array (``Batch.encoded``)."""
    blobs: list[Blob] = []
    error: str = ""
    """Why the sink refused it, the last time."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SpooledBatch)


def sink_spool_dir(root: Path, sink_name: str) -> Path:
    """The spool directory of one sink under ``root``, its name made safe for a path."""
    safe = _UNSAFE.sub("_", sink_name)[:_MAX_SINK_DIR].lstrip(".") or "sink"
    return root / safe


def write_spool_file(root: Path, batch: Batch, sink_name: str, error: str) -> Path:
    """Write ``batch`` to the spool of ``sink_name`` under ``root``; returns the file's path.

    Blobs held in memory are spooled with their bytes; artifact files by their path.
    Raises ``OSError`` when the spool cannot be written.
    """
    directory = sink_spool_dir(root, sink_name)
    for path in (root, directory):
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    spooled = SpooledBatch(
        sink_name,
        validate_run_id(batch.run_id),
        batch.writer_id,
        batch.state.owner,
        batch.final,
        batch.encoded,
        list(batch.blobs),
        error,
    )
    name = f"{time.time_ns():020d}-{next(_counter):08d}-{batch.run_id}-{batch.writer_id}.spool"
    target = directory / name
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(SPOOL_MAGIC + frame(_encoder.encode(spooled)))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(target)
    return target


def read_spool_file(path: Path) -> SpooledBatch | None:
    """Read one spool file; ``None`` when it is torn or not a spool file."""
    data = path.read_bytes()
    if not data.startswith(SPOOL_MAGIC) or len(data) < len(SPOOL_MAGIC) + FRAME_HEADER.size:
        return None
    length, checksum = FRAME_HEADER.unpack_from(data, len(SPOOL_MAGIC))
    payload = data[len(SPOOL_MAGIC) + FRAME_HEADER.size :]
    if len(payload) != length or zlib.crc32(payload) != checksum:
        return None
    try:
        return _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def spool_files(root: Path, sink_name: str) -> list[Path]:
    """The spool files waiting for ``sink_name`` under ``root``, oldest first."""
    directory = sink_spool_dir(root, sink_name)
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".spool"))  # noqa: PTH208
    except FileNotFoundError:
        return []
    return [directory / n for n in names]


@dataclass
class SpoolReport:
    """What :func:`resend_spool` did."""

    batches: int = 0
    """Batches the sink took (their files were deleted)."""
    events: int = 0
    """Events in those batches."""
    remaining: int = 0
    """Spool files still waiting (the sink failed again; they are kept for next time)."""
    unreadable: list[Path] = field(default_factory=list)
    """Files that are not readable spool files (kept, for a human to look at)."""
    missing_blobs: int = 0
    """Artifact files that no longer exist; their events are sent without them."""
    error: str | None = None
    """Why the sink stopped taking batches, if it did."""


def _batch_of(spooled: SpooledBatch, writer_id: str, report: SpoolReport) -> Batch:
    events = decode_events(spooled.events)
    blobs = []
    for blob in spooled.blobs:
        if blob.data is None and blob.source is not None and not Path(blob.source).is_file():
            report.missing_blobs += 1
            _log.warning(
                "strikes: a spooled artifact file is gone; its events are re-sent without it",
                run_id=spooled.run_id,
                source=blob.source,
            )
            continue
        blobs.append(blob)
    state = RunState(spooled.run_id, owner=False)
    state.fold(events)
    return Batch(
        run_id=spooled.run_id,
        writer_id=writer_id,
        events=events,
        blobs=blobs,
        state=state,
        final=False,
    )


async def resend_spool_async(sink: Sink, root: Path) -> SpoolReport:
    """Hand every batch spooled for ``sink`` under ``root`` to the (open) sink, oldest first.

    Each batch goes out under a new writer id (``r<time>-<original>``), so a store that
    keeps one file per writer never appends to a file another writer still holds. The
    first failure stops the resend; what is left stays spooled. Runs on the caller's loop.
    """
    report = SpoolReport()
    files = spool_files(root, sink.name)
    if not files:
        return report
    prefix = f"r{time.time_ns():x}-"
    pending: list[tuple[Path, Batch]] = []
    for path in files:
        spooled = read_spool_file(path)
        if spooled is None:
            report.unreadable.append(path)
            continue
        pending.append((path, _batch_of(spooled, (prefix + spooled.writer_id)[:64], report)))
    # The last batch of each writer closes its file in the sink (a segment, a connection).
    last_of_writer = {(b.run_id, b.writer_id): i for i, (_, b) in enumerate(pending)}
    for index, (path, batch) in enumerate(pending):
        batch.final = last_of_writer[(batch.run_id, batch.writer_id)] == index
        try:
            await sink.write(batch)
        except Exception as exc:  # keep it spooled; the next resend tries again
            report.error = repr(exc)
            report.remaining = len(pending) - index
            _log.error(
                "strikes: resending the spool failed; the rest stays spooled",
                sink=sink.name,
                run_id=batch.run_id,
                events=len(batch.events),
                remaining=report.remaining,
                error=repr(exc),
            )
            break
        path.unlink()
        report.batches += 1
        report.events += len(batch.events)
    if report.batches:
        await sink.flush()
    if isinstance(sink, LocalStore):  # runs that got their end late show it in the list
        for run_id in sorted({batch.run_id for _, batch in pending[: report.batches]}):
            await sink.rebuild_manifest(run_id)
    _log.info(
        "strikes: spool re-sent",
        sink=sink.name,
        batches=report.batches,
        events=report.events,
        remaining=report.remaining,
    )
    return report


def resend_spool(sink: Sink, path: str | os.PathLike[str] | None = None) -> SpoolReport:
    """Re-send every batch spooled for ``sink`` (by its ``name``) and delete what it took.

    ``path`` is the spool directory, by default ``<store>/spool`` of the current settings.
    Blocks until done; the writes run on the runtime loop like any delivery, and ``sink``
    is opened there once if it was not already. Returns a :class:`SpoolReport`.
    """
    from strikes._config import get_settings  # noqa: PLC0415 - settings import the runtime
    from strikes.runtime.loop import get_runtime  # noqa: PLC0415

    if not isinstance(sink, Sink):
        raise TypeError(f"sink must be a Sink, got {type(sink).__qualname__}")
    root = Path(path) if path is not None else get_settings().dir / "spool"
    runtime = get_runtime()

    async def resend() -> SpoolReport:
        await runtime.ensure_open(sink)
        return await resend_spool_async(sink, root.expanduser().absolute())

    return runtime.submit(resend()).result()
