"""A run's actor: drains its mailbox, folds events into state, and feeds batches to sinks.

One actor per run per process (the process's *writer* of that run). It lives on the
runtime loop in three phases, like a pykka actor: started, running (the flush loop), and
closing (drain everything, deliver a final batch, flush the sinks).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import anyio.to_thread
import structlog

from strikes.events import (
    Artifact,
    ArtifactFile,
    Blob,
    Error,
    Event,
    Metric,
    Provenance,
    RunFinished,
    RunProvenance,
)
from strikes.runtime.mailbox import Backpressure, Mailbox
from strikes.runtime.spool import write_spool_file
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from strikes._sysmetrics import SystemSampler
    from strikes.runtime.loop import Runtime
    from strikes.sinks.base import Sink

    Capture = Callable[[], tuple[Provenance, dict[str, bytes]]]

__all__ = ["Actor", "ArtifactJob", "DeliveryPolicy", "Ending"]

_log = structlog.get_logger("strikes.actor")

MAX_PENDING_BLOB_BYTES = 64 * 1024 * 1024
"""Bytes of large values a run holds for its next batch before producers wait."""


class DeliveryPolicy(NamedTuple):
    """How hard an actor tries a failing sink before it gives a batch up."""

    attempts: int = 4
    """Writes tried per batch and sink, the first included."""
    backoff: float = 0.05
    """Seconds before the first retry; doubled each retry, with up to 50% jitter."""
    timeout: float = 30.0
    """Seconds one write may take before it counts as failed."""
    probe: float = 1.0
    """Seconds a sink that gave up on a batch is left alone: meanwhile its batches go
    straight to the spool, then one write probes it (the others and the producer never
    wait on a sink that is down)."""


DROPPED_METRIC = "strikes.dropped"
"""Run metric a writer logs at close when its drop policy dropped metrics: how many."""


class Ending(NamedTuple):
    """How the owner ended its run: the actor writes ``run_finished`` from it on close."""

    status: str
    error: str | None
    ts: int
    stats: dict[str, int]


class ArtifactJob(NamedTuple):
    """A request to store a file or directory, resolved (hashed) on the actor's side."""

    name: str
    source: Path
    span_id: str
    parent_id: str
    seq: int
    ts: int


def _hash_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    return digest.hexdigest(), path.stat().st_size


def _hash_tree(source: Path) -> tuple[bool, list[tuple[str, str, int, Path]]]:
    """Hash a file, or every file under a directory: (is_dir, [(relpath, hash, size, abs)])."""
    if source.is_dir():
        found = []
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            digest, size = _hash_file(path)
            found.append((path.relative_to(source).as_posix(), digest, size, path))
        return True, found
    digest, size = _hash_file(source)
    return False, [(source.name, digest, size, source)]


class Actor:
    """The writer of one run in this process: mailbox, state, flush loop and delivery."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        run_id: str,
        span_id: str,
        sinks: Sequence[Sink],
        batch_size: int,
        mailbox_size: int,
        backpressure: Backpressure,
        flush_interval: float,
        delivery: DeliveryPolicy,
        owner: bool,
        spool_dir: Path | None = None,
        heartbeat_interval: float | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.span_id = span_id
        self.writer_id = f"{time.time_ns():x}-{os.getpid()}-{random.getrandbits(32):08x}"
        self.sinks = tuple(sinks)
        self.batch_size = batch_size
        self.max_batch_size = max(batch_size, max_batch_size or batch_size)
        self.flush_interval = flush_interval
        self.delivery = delivery
        self.owner = owner
        self.spool_dir = spool_dir
        self.backpressure = backpressure
        self.next_seq = itertools.count().__next__
        self.mailbox: Mailbox[Event] = Mailbox(
            batch_size=batch_size,
            max_size=mailbox_size,
            policy=backpressure,
            wake=self._wake_threadsafe,
            on_first_drop=self._warn_dropping,
        )
        self.put = self.mailbox.put
        self.blobs: deque[Blob] = deque()
        self.blob_bytes = 0
        self._blob_lock = threading.Lock()
        self.jobs: deque[ArtifactJob] = deque()
        self.state = RunState(run_id, owner=owner)
        # Only the owner's heartbeat means anything: it alone writes the manifest.
        self.heartbeat_interval = heartbeat_interval if owner else None
        self.state.heartbeat = self.heartbeat_interval or 0.0
        self._last_beat = time.monotonic()
        self.sampler: SystemSampler | None = None
        """The run's system-metrics sampler, stopped (at the latest) when the actor closes."""
        self._capture_task: asyncio.Task[None] | None = None
        self.finished = False
        self.drained = 0
        self.undelivered = 0
        self.spooled = 0
        self._down_until: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closing = False
        self._closed = False
        self._close_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- any thread ----------------------------------------------------------------

    def start(self) -> None:
        """Start the flush loop on the runtime."""
        self.runtime.actors.add(self)
        self.runtime.call_soon(self._spawn)

    def _wake_threadsafe(self) -> None:
        self.runtime.call_soon(self._wake.set)

    def put_blob(self, blob: Blob) -> None:
        """Queue a large value for the next batch; waits while too many bytes are pending.

        Values are never dropped, whatever the policy: memory is bounded by waiting (the
        runtime's own thread never waits).
        """
        self.blobs.append(blob)
        if blob.data is None:
            return
        with self._blob_lock:
            self.blob_bytes += len(blob.data)
            over = self.blob_bytes > MAX_PENDING_BLOB_BYTES
        if over:
            self._wake_threadsafe()
            self.mailbox.wait_until(lambda: self.blob_bytes <= MAX_PENDING_BLOB_BYTES)

    def capture(self, capture: Capture) -> None:
        """Run ``capture`` on a worker thread; what it returns becomes a provenance event.

        The event is put when the capture is done, with a sequence number of then and
        the time of now, the run's start, which it describes. ``flush()`` and ``close()``
        wait for it, so it always comes before ``run_finished``.
        """
        ts = time.time_ns()
        self.runtime.call_soon(lambda: self._start_capture(capture, ts))

    def _start_capture(self, capture: Capture, ts: int) -> None:
        self._capture_task = self.runtime.loop.create_task(
            self._capture(capture, ts), name=f"strikes-provenance-{self.run_id}"
        )

    async def _capture(self, capture: Capture, ts: int) -> None:
        try:
            provenance, blobs = await anyio.to_thread.run_sync(capture)
        except Exception:  # capture itself never raises; a bug must not stop the run
            _log.exception("strikes: provenance capture failed", run_id=self.run_id)
            return
        for digest, data in blobs.items():
            self.put_blob(Blob(digest, data))
        self.put(RunProvenance(self.run_id, self.span_id, "", self.next_seq(), ts, provenance))
        self._wake.set()  # deliver it now: readers see it while the run goes on

    async def _report_dropped(self) -> None:
        """Log this writer's drop count as the run metric ``strikes.dropped``, at close.

        It waits (bounded) for room first: under a drop policy a put into a full mailbox
        could cost the report itself. A report that still does not fit is counted in
        ``stats["dropped"]`` like any other drop.
        """
        mailbox = self.mailbox
        with anyio.move_on_after(self.delivery.timeout):
            # Room is signalled to producer threads only; poll while the flush loop drains.
            while not mailbox.has_room():  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        self.put(
            Metric(
                self.run_id,
                self.span_id,
                "",
                self.next_seq(),
                time.time_ns(),
                DROPPED_METRIC,
                float(mailbox.statistics().dropped),
            )
        )

    async def _await_capture(self) -> None:
        task = self._capture_task
        if task is None or task.done():
            return
        try:
            # Shielded: a timeout here leaves the capture to finish (and its event late).
            async with asyncio.timeout(self.delivery.timeout):
                await asyncio.shield(task)
        except TimeoutError:
            _log.warning(
                "strikes: provenance capture is taking too long; not waiting for it",
                run_id=self.run_id,
                timeout=self.delivery.timeout,
            )

    def _warn_dropping(self) -> None:
        # Once per run and writer: dropping is allowed by the policy, never silent.
        _log.warning(
            "strikes: mailbox full, dropping metrics; the count is in Run.stats['dropped']",
            run_id=self.run_id,
            backpressure=self.backpressure,
            mailbox_size=self.mailbox.statistics().max_size,
        )

    def stats(self) -> dict[str, int]:
        """Counts a user can read on ``Run.stats``."""
        mailbox = self.mailbox.statistics()
        return {
            "events": self.drained + mailbox.queued,
            "dropped": mailbox.dropped,
            "blocked": mailbox.blocked,
            "queued": mailbox.queued,
            "undelivered": self.undelivered,
            "spooled": self.spooled,
            "late": mailbox.late,
        }

    # -- the runtime loop ------------------------------------------------------------

    def _spawn(self) -> None:
        self.mailbox.bind_consumer()
        self._task = self.runtime.loop.create_task(self._run(), name=f"strikes-actor-{self.run_id}")

    async def _run(self) -> None:
        clock = time.monotonic
        beat = self.heartbeat_interval
        next_flush = clock() + self.flush_interval
        while not self._closing:
            timeout = next_flush - clock()
            if beat is not None:
                timeout = min(timeout, self._last_beat + beat - clock())
            try:
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            if self._closing:
                break
            now = clock()
            if self._wake.is_set() or now >= next_flush:  # else only a heartbeat is due
                self._wake.clear()
                next_flush = now + self.flush_interval
                try:
                    await self._deliver_pending(everything=False)
                except Exception:  # the flush loop must outlive any bug in a batch
                    _log.exception("strikes: flush failed", run_id=self.run_id)
            if beat is not None and clock() - self._last_beat >= beat:
                await self._beat()

    async def _beat(self) -> None:
        """Tell the sinks the run is alive although nothing was delivered for a while."""
        async with self._lock:
            self._last_beat = time.monotonic()
            self.state.last_seen = max(self.state.last_seen, time.time_ns())
            for sink in self.sinks:
                down_until = self._down_until.get(id(sink))
                if down_until is not None and time.monotonic() < down_until:
                    continue
                await self._call_sink(sink, "heartbeat", lambda s: s.heartbeat(self.state))

    async def _deliver_pending(self, *, everything: bool, final: bool = False) -> None:
        """Cut the mailbox into batches and deliver them: one due batch, or everything.

        "Everything" is what the mailbox holds when delivery starts: producers that keep
        logging meanwhile (other threads, or the main thread after SIGTERM) must not keep
        a flush or a close chasing them for ever.
        """
        async with self._lock:
            mailbox = self.mailbox
            remaining = len(mailbox)
            while True:
                # Behind by two batches or more, deliver up to max_batch_size at once: each
                # delivery costs the runtime thread a few trips for the GIL (the CRC, a
                # write on aiofiles' thread), and a producer in a loop holds it for up to
                # the 5 ms switch interval each time; batching up keeps the actor ahead.
                backlog = remaining if everything else len(mailbox)
                if backlog >= 2 * self.batch_size:
                    limit = min(backlog, self.max_batch_size)
                else:
                    limit = min(self.batch_size, backlog) if everything else self.batch_size
                events = mailbox.drain(limit)
                remaining -= len(events)
                if everything:
                    more = remaining > 0 and len(mailbox) > 0
                else:
                    more = len(mailbox) >= self.batch_size
                last = final and not more
                if events or self.blobs or self.jobs or last:
                    await self._deliver(events, final=last)
                if not more:
                    return

    async def _deliver(self, events: list[Event], *, final: bool) -> None:
        blobs: list[Blob] = []
        while self.blobs:
            blobs.append(self.blobs.popleft())
        if blobs:
            taken = sum(len(blob.data) for blob in blobs if blob.data is not None)
            with self._blob_lock:
                self.blob_bytes -= taken
            self.mailbox.notify_waiters()
        while self.jobs:
            await self._resolve_artifact(self.jobs.popleft(), events, blobs)
        self.state.fold(events)
        self.drained += len(events)
        if events:
            self._last_beat = time.monotonic()  # the batch itself shows the run is alive
        batch = Batch(
            run_id=self.run_id,
            writer_id=self.writer_id,
            events=events,
            blobs=blobs,
            state=self.state,
            final=final,
        )
        if len(self.sinks) == 1:
            await self._write(self.sinks[0], batch)
        else:
            await asyncio.gather(*(self._write(sink, batch) for sink in self.sinks))

    async def _resolve_artifact(
        self, job: ArtifactJob, events: list[Event], blobs: list[Blob]
    ) -> None:
        try:
            is_dir, found = await anyio.to_thread.run_sync(_hash_tree, job.source)
        except OSError as exc:
            _log.warning(
                "strikes: artifact vanished before it was stored",
                run_id=self.run_id,
                artifact=job.name,
                source=str(job.source),
                error=str(exc),
            )
            events.append(
                Error(
                    self.run_id,
                    job.span_id,
                    job.parent_id,
                    job.seq,
                    job.ts,
                    "ArtifactMissing",
                    f"artifact {job.name!r} from {str(job.source)!r} could not be read: {exc}",
                )
            )
            return
        files = tuple(ArtifactFile(rel, digest, size) for rel, digest, size, _ in found)
        blobs.extend(Blob(digest, source=str(path)) for _, digest, _, path in found)
        events.append(
            Artifact(
                self.run_id,
                job.span_id,
                job.parent_id,
                job.seq,
                job.ts,
                job.name,
                str(job.source),
                is_dir,
                files,
            )
        )

    async def _write(self, sink: Sink, batch: Batch) -> None:
        """Write ``batch`` to ``sink``, retrying with backoff; spool it when all tries fail."""
        policy = self.delivery
        down_until = self._down_until.get(id(sink))
        if down_until is not None and time.monotonic() < down_until:
            await self._give_up(sink, batch, 0, "sink is down (it failed a batch recently)")
            return
        attempts = 1 if down_until is not None else policy.attempts  # a down sink: one probe
        delay = policy.backoff
        for attempt in range(1, attempts + 1):
            try:
                await self.runtime.ensure_open(sink)
                async with asyncio.timeout(policy.timeout):
                    await sink.write(batch)
            except Exception as exc:
                error = "timed out" if isinstance(exc, TimeoutError) else repr(exc)
                if attempt == attempts:
                    self._down_until[id(sink)] = time.monotonic() + policy.probe
                    await self._give_up(sink, batch, attempt, error)
                    return
                _log.warning(
                    "strikes: sink failed, retrying",
                    sink=sink.name,
                    run_id=self.run_id,
                    events=len(batch.events),
                    attempt=attempt,
                    error=error,
                )
                await asyncio.sleep(delay * (1 + random.random() / 2))  # noqa: S311 - jitter
                delay *= 2
            else:
                if down_until is not None:
                    del self._down_until[id(sink)]
                    _log.info("strikes: sink recovered", sink=sink.name, run_id=self.run_id)
                return

    async def _give_up(self, sink: Sink, batch: Batch, attempts: int, error: str) -> None:
        """Spool a batch ``sink`` would not take; count it as undelivered if even that fails."""
        path: Path | None = None
        spool_error: str | None = None
        if self.spool_dir is not None:
            try:
                path = await anyio.to_thread.run_sync(
                    write_spool_file, self.spool_dir, batch, sink.name, error
                )
            except Exception as exc:  # a full disk must not take the actor down
                spool_error = repr(exc)
        if path is not None:
            self.spooled += len(batch.events)
            _log.error(
                "strikes: sink gave up on a batch; spooled for strikes.resend_spool()",
                sink=sink.name,
                run_id=self.run_id,
                events=len(batch.events),
                attempts=attempts,
                error=error,
                spool=str(path),
            )
            return
        self.undelivered += len(batch.events)
        _log.error(
            "strikes: sink gave up on a batch; it is lost for this sink",
            sink=sink.name,
            run_id=self.run_id,
            events=len(batch.events),
            attempts=attempts,
            error=error,
            spool_error=spool_error,
        )

    async def flush(self) -> None:
        """Deliver everything put so far (the provenance too) and flush every sink."""
        await self._await_capture()
        await self._deliver_pending(everything=True)
        await self._flush_sinks()

    async def _flush_sinks(self) -> None:
        for sink in self.sinks:
            await self._call_sink(sink, "flush", lambda s: s.flush())

    async def _call_sink(
        self, sink: Sink, what: str, call: Callable[[Sink], Awaitable[None]]
    ) -> None:
        """Open ``sink`` if needed and ``call`` it within the delivery timeout; log a failure."""
        try:
            await self.runtime.ensure_open(sink)
            async with asyncio.timeout(self.delivery.timeout):
                await call(sink)
        except Exception as exc:
            _log.warning(
                f"strikes: sink {what} failed",
                sink=sink.name,
                run_id=self.run_id,
                error="timed out" if isinstance(exc, TimeoutError) else repr(exc),
            )

    async def close(
        self,
        *,
        status_if_open: str | None = None,
        error: str | None = None,
        ending: Ending | None = None,
    ) -> None:
        """Stop the flush loop, deliver a final batch and flush the sinks (idempotent).

        ``ending`` is how the owner ended the run; ``status_if_open`` (with ``error``)
        ends a run its owner left open. Either becomes ``run_finished``, put after the
        provenance so that it stays the run's last event. A second call returns once the
        first is done.
        """
        if self._closed:
            await self._close_done.wait()
            return
        self._closed = True
        try:
            await self._close(status_if_open, error, ending)
        finally:
            self._close_done.set()

    async def _close(
        self, status_if_open: str | None, error: str | None, ending: Ending | None
    ) -> None:
        sampler, self.sampler = self.sampler, None
        if sampler is not None and sampler.running:
            # On a worker thread, while the flush loop still drains: a sampler blocked on
            # a full mailbox gets its room and stops.
            await anyio.to_thread.run_sync(sampler.stop)
        await self._await_capture()
        if self.mailbox.statistics().dropped:
            await self._report_dropped()
        if ending is None and status_if_open is not None and self.owner and not self.finished:
            ending = Ending(status_if_open, error, time.time_ns(), self.stats())
        if ending is not None:
            self.finished = True
            self.put(
                RunFinished(
                    self.run_id,
                    self.span_id,
                    "",
                    self.next_seq(),
                    ending.ts,
                    ending.status,
                    ending.error,
                    ending.stats,
                )
            )
        self._closing = True
        self.mailbox.close()
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._deliver_pending(everything=True, final=True)
        await self._flush_sinks()
        self.runtime.actors.discard(self)
