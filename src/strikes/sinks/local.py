"""The embedded local store: segments, manifests and objects in a directory on disk."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiofiles
import aiofiles.os
import structlog

from strikes.events import Blob, RunFinished, RunStarted
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch, Sink
from strikes.store.layout import DIR_MODE, FILE_MODE, StoreLayout, default_store_dir
from strikes.store.manifest import Manifest, encode_manifest, manifest_from_state
from strikes.store.reader import read_run_events
from strikes.store.segments import MAGIC, frame

if TYPE_CHECKING:
    from aiofiles.threadpool.binary import AsyncFileIO

__all__ = ["LocalStore"]

_log = structlog.get_logger("strikes.local")

SEGMENT_MAX_BYTES = 64 * 1024 * 1024
"""A writer starts a new segment file past this size."""
MANIFEST_INTERVAL_NS = 1_000_000_000
"""The owner rewrites a running run's manifest at most this often (start and end always)."""
_COPY_CHUNK = 1024 * 1024


async def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.remove(path)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, FILE_MODE)


class _SegmentWriter:
    """One writer's open segment file, rotated past :data:`SEGMENT_MAX_BYTES`."""

    __slots__ = ("file", "part", "size")

    def __init__(self) -> None:
        self.file: AsyncFileIO | None = None
        self.part = 0
        self.size = 0


class LocalStore(Sink):
    """The default sink: one directory per run, append-only segments, content-addressed objects.

    ``path`` defaults to the directory given to ``configure(dir=...)``, else
    ``$STRIKES_DIR``, else ``./.strikes``. Files are private to the user (0600/0700).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._explicit = path is not None
        self.layout = StoreLayout(path if path is not None else default_store_dir())
        self._writers: dict[tuple[str, str], _SegmentWriter] = {}
        self._manifest_written: dict[str, int] = {}
        self._known_objects: set[str] = set()
        self._tmp_ids = itertools.count()
        self._dirs: set[Path] = set()
        self._host = socket.gethostname()

    @property
    def path(self) -> Path:
        """The store's root directory."""
        return self.layout.root

    def _bind_default(self, path: str | os.PathLike[str]) -> None:
        """Use ``path`` unless the user gave one (``configure(dir=...)``)."""
        if not self._explicit:
            self.layout = StoreLayout(path)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r})"

    async def open(self) -> None:
        """Create the store's directories."""
        for directory in (self.layout.runs, self.layout.objects):
            await self._private_dir(directory)

    async def _private_dir(self, path: Path) -> None:
        """Make ``path`` and any missing parents, each 0700 (``makedirs`` only sets the leaf's)."""
        if path in self._dirs:
            return
        missing = []
        current = path
        while not await aiofiles.os.path.isdir(current):
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            await aiofiles.os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
        self._dirs.add(path)

    async def write(self, batch: Batch) -> None:
        """Store the batch's objects, append its events as one frame, update the manifest."""
        for blob in batch.blobs:
            await self._store_blob(blob)
        if batch.events:
            await self._append(batch)
        if batch.state.owner:
            await self._maybe_write_manifest(batch)
        if batch.final:
            await self._close_writer((batch.run_id, batch.writer_id))
            self._manifest_written.pop(batch.run_id, None)

    async def _append(self, batch: Batch) -> None:
        key = (batch.run_id, batch.writer_id)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = _SegmentWriter()
        if writer.file is not None and writer.size >= SEGMENT_MAX_BYTES:
            await writer.file.close()
            writer.file = None
            writer.part += 1
        data = frame(batch.encoded)
        if writer.file is None:
            path = self.layout.segment(batch.run_id, batch.writer_id, writer.part)
            await self._private_dir(path.parent)
            # Unbuffered: each frame reaches the OS in one write, so kill -9 loses nothing
            # that was written.
            writer.file = await aiofiles.open(path, "ab", buffering=0, opener=_private_opener)
            data = MAGIC + data
            writer.size = 0
        await writer.file.write(data)
        writer.size += len(data)

    async def _maybe_write_manifest(self, batch: Batch) -> None:
        run_id = batch.run_id
        now = time.monotonic_ns()
        last = self._manifest_written.get(run_id)
        boundary = batch.final or any(
            type(event) in (RunStarted, RunFinished)
            for event in batch.events[:1] + batch.events[-1:]
        )
        if last is not None and not boundary and now - last < MANIFEST_INTERVAL_NS:
            return
        self._manifest_written[run_id] = now
        await self._write_manifest(
            manifest_from_state(batch.state, pid=os.getpid(), host=self._host)
        )

    async def heartbeat(self, state: RunState) -> None:
        """Rewrite the manifest of a silent open run, so ``last_seen`` tells it is alive."""
        if not state.owner or not state.started_at or state.status != "running":
            return  # not ours, or its run_started is not stored yet, or it has ended
        self._manifest_written[state.run_id] = time.monotonic_ns()
        await self._write_manifest(manifest_from_state(state, pid=os.getpid(), host=self._host))

    async def _write_manifest(self, manifest: Manifest) -> None:
        path = self.layout.manifest(manifest.id)
        await self._private_dir(path.parent)
        tmp = path.with_name(f".manifest.{os.getpid()}.tmp")
        async with aiofiles.open(tmp, "wb", opener=_private_opener) as handle:
            await handle.write(encode_manifest(manifest))
        await aiofiles.os.replace(tmp, path)

    async def rebuild_manifest(self, run_id: str) -> bool:
        """Rewrite a run's manifest from every event its segments hold; ``False`` if none.

        Used after re-sending a spool: batches that reached the store late (their run's
        end, say) then show in the run's status and summary without reading its events.
        """
        events = await asyncio.to_thread(read_run_events, self.layout, run_id)
        started = next((e for e in events if type(e) is RunStarted), None)
        if started is None:
            return False
        state = RunState(run_id, owner=True)
        state.fold(events)
        await self._write_manifest(manifest_from_state(state, pid=started.pid, host=started.host))
        return True

    async def _store_blob(self, blob: Blob) -> None:
        if blob.hash in self._known_objects:
            return
        target = self.layout.object(blob.hash)
        if not await aiofiles.os.path.exists(target):
            await self._private_dir(target.parent)
            # A name of its own per write: runs flushing at once may store the same object
            # (every run's package list), and must not rename each other's file away.
            tmp = target.with_name(f".{blob.hash}.{os.getpid()}.{next(self._tmp_ids)}.tmp")
            if blob.data is not None:
                async with aiofiles.open(tmp, "wb", opener=_private_opener) as handle:
                    await handle.write(blob.data)
            elif blob.source is not None:
                try:
                    digest = await self._copy(Path(blob.source), tmp)
                except OSError as exc:
                    # The artifact vanished (or became unreadable) between hashing and
                    # copying: the batch's events must still get in; the object is missing.
                    _log.warning(
                        "strikes: artifact file vanished before it was copied; not stored",
                        source=blob.source,
                        logged_hash=blob.hash,
                        error=str(exc),
                    )
                    await _remove_quietly(tmp)
                    return
                if digest != blob.hash:
                    _log.warning(
                        "strikes: artifact file changed after it was logged; stored as it is now",
                        source=blob.source,
                        logged_hash=blob.hash,
                        stored_hash=digest,
                    )
                    target = self.layout.object(digest)
                    await self._private_dir(target.parent)
            await aiofiles.os.replace(tmp, target)
        self._known_objects.add(blob.hash)

    async def _copy(self, source: Path, target: Path) -> str:
        digest = hashlib.sha256()
        async with (
            aiofiles.open(source, "rb") as src,
            aiofiles.open(target, "wb", opener=_private_opener) as dst,
        ):
            while chunk := await src.read(_COPY_CHUNK):
                digest.update(chunk)
                await dst.write(chunk)
        return digest.hexdigest()

    async def _close_writer(self, key: tuple[str, str]) -> None:
        writer = self._writers.pop(key, None)
        if writer is not None and writer.file is not None:
            await writer.file.close()

    async def close(self) -> None:
        """Close every open segment file."""
        for key in list(self._writers):
            await self._close_writer(key)
