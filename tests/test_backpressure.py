"""Backpressure: block waits without deadlock, drop policies count exactly, memory stays bounded."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import threading
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import msgspec
import pytest
import structlog.testing

import strikes as dn
from strikes.events import Metric, Param
from strikes.runtime import actor as actor_module
from strikes.runtime.mailbox import Backpressure, Mailbox
from strikes.sinks.base import Batch

DROPPED = actor_module.DROPPED_METRIC

MIB = 1024 * 1024
DROP_POLICIES: tuple[Backpressure, ...] = ("drop_newest", "drop_oldest")


def _metric(i: int) -> Metric:
    return Metric("r" * 32, "s" * 16, "", i, 0, "m", float(i))


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition another thread makes true (there is nothing to await here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


class CountingSink(dn.Sink):
    """Counts metrics; optionally sleeps per batch or waits for a gate before each write."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay = delay
        self.gate = gate
        self.metrics = 0
        self.values: list[float] = []
        self.reports: list[float] = []
        """Values of the writer's ``strikes.dropped`` report, kept apart from the counts."""
        self.blobs: set[str] = set()
        self.lock = threading.Lock()

    async def write(self, batch: Batch) -> None:
        """Count the batch's metrics after the delay or the gate."""
        if self.gate is not None and not self.gate.is_set():
            await anyio.to_thread.run_sync(self.gate.wait)
        if self.delay:
            await asyncio.sleep(self.delay)
        values = [e.value for e in batch.events if type(e) is Metric and e.name != DROPPED]
        reports = [e.value for e in batch.events if type(e) is Metric and e.name == DROPPED]
        with self.lock:
            self.reports.extend(reports)
            self.blobs.update(blob.hash for blob in batch.blobs)
            self.metrics += len(values)
            self.values.extend(values)


class TestMailboxPolicies:
    @pytest.mark.parametrize("policy", ["block", "drop_newest", "drop_oldest"])
    def test_counts_are_exact_and_size_bounded_with_many_threads(
        self, policy: Backpressure
    ) -> None:
        """delivered + dropped == produced, and the mailbox never exceeds max_size + producers."""
        producers, each, max_size = 4, 5000, 50
        mailbox: Mailbox[Metric] = Mailbox(
            batch_size=10, max_size=max_size, policy=policy, wake=lambda: None
        )
        taken: list[Metric] = []
        stop = threading.Event()

        def consume() -> None:
            mailbox.bind_consumer()
            while not stop.is_set() or len(mailbox):
                taken.extend(mailbox.drain(7))

        consumer = threading.Thread(target=consume)
        consumer.start()
        threads = [
            threading.Thread(target=lambda: [mailbox.put(_metric(i)) for i in range(each)])
            for _ in range(producers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        consumer.join()
        stats = mailbox.statistics()
        assert len(taken) + stats.dropped == producers * each
        assert stats.high_water <= max_size + producers
        if policy == "block":
            assert stats.dropped == 0

    @pytest.mark.parametrize("policy", DROP_POLICIES)
    def test_structural_events_are_never_dropped_nor_cause_drops(
        self, policy: Backpressure
    ) -> None:
        """Only a metric's put may drop, and only metrics are dropped."""
        mailbox: Mailbox[object] = Mailbox(
            batch_size=2, max_size=4, policy=policy, wake=lambda: None
        )
        params = [Param("r" * 32, "s" * 16, "", i, 0, f"p{i}", i) for i in range(3)]
        for i in range(4):
            mailbox.put(_metric(i))
        for param in params:
            mailbox.put(param)
        assert mailbox.statistics().dropped == 0
        for i in range(4, 10):
            mailbox.put(_metric(i))
        drained = mailbox.drain(100)
        assert [e for e in drained if type(e) is Param] == params
        assert mailbox.statistics().dropped == 6
        assert len(drained) == 7

    @pytest.mark.parametrize("policy", DROP_POLICIES)
    def test_first_drop_is_reported_once(self, policy: Backpressure) -> None:
        """The first-drop callback fires exactly once, however many metrics are dropped."""
        calls: list[int] = []
        mailbox: Mailbox[Metric] = Mailbox(
            batch_size=1,
            max_size=2,
            policy=policy,
            wake=lambda: None,
            on_first_drop=lambda: calls.append(1),
        )
        for i in range(10):
            mailbox.put(_metric(i))
        assert mailbox.statistics().dropped == 8
        assert calls == [1]

    def test_consumer_thread_never_blocks_on_itself(self) -> None:
        """A put past max_size from the consumer's own thread returns at once under block."""
        mailbox: Mailbox[Metric] = Mailbox(
            batch_size=1, max_size=2, policy="block", wake=lambda: None
        )
        mailbox.bind_consumer()
        for i in range(10):
            mailbox.put(_metric(i))
        assert len(mailbox) == 10
        assert mailbox.statistics().blocked == 0
        assert mailbox.wait_for_room() is False

    def test_close_releases_blocked_producers(self) -> None:
        """Closing the mailbox lets a producer blocked on it go on (its item is kept)."""
        mailbox: Mailbox[Metric] = Mailbox(
            batch_size=1, max_size=1, policy="block", wake=lambda: None
        )
        mailbox.put(_metric(0))
        thread = threading.Thread(target=mailbox.put, args=(_metric(1),))
        thread.start()
        assert _wait_until(lambda: mailbox.statistics().blocked == 1)
        assert thread.is_alive()
        mailbox.close()
        thread.join(5)
        assert not thread.is_alive()
        assert [m.seq for m in mailbox.drain(10)] == [0, 1]

    def test_puts_after_close_are_bounded_and_counted_as_late(self) -> None:
        """A closed mailbox keeps what it held and never grows past max_size: late puts count."""
        mailbox: Mailbox[object] = Mailbox(
            batch_size=2, max_size=4, policy="block", wake=lambda: None
        )
        for i in range(3):
            mailbox.put(_metric(i))
        mailbox.put("final")  # a structural event put before the close
        mailbox.close()
        for i in range(3, 100):
            mailbox.put(_metric(i))
        assert mailbox.statistics().late == 97  # it was full: every late put discarded
        assert mailbox.drain(100) == [_metric(0), _metric(1), _metric(2), "final"]

    def test_wait_for_room_times_out(self) -> None:
        """wait_for_room returns False when no room appears within the timeout."""
        mailbox: Mailbox[Metric] = Mailbox(
            batch_size=1, max_size=1, policy="block", wake=lambda: None
        )
        mailbox.put(_metric(0))
        assert mailbox.wait_for_room(0.01) is False
        mailbox.drain(1)
        assert mailbox.wait_for_room(0.01) is True


class TestBlockEndToEnd:
    def test_sync_producer_waits_for_a_gated_sink_and_loses_nothing(self) -> None:
        """Under block, a producer facing a stuck sink waits; once it moves, everything arrives."""
        gate = threading.Event()
        sink = CountingSink(gate=gate)
        dn.configure(sinks=[sink], batch_size=10, mailbox_size=20, flush_interval=3600)
        with dn.run("blocked") as run:
            # the producer logs into this run from another thread through a copied context
            producer = threading.Thread(
                target=contextvars.copy_context().run,
                args=(lambda: [dn.log_metric("m", i) for i in range(500)],),
            )
            producer.start()
            assert _wait_until(lambda: run.stats["blocked"] >= 1)
            assert producer.is_alive()
            assert run.stats["queued"] <= 20 + 1
            gate.set()
            producer.join()
        assert sink.values == [float(i) for i in range(500)]
        assert run.stats["dropped"] == 0

    def test_many_threads_into_one_run_lose_nothing(self) -> None:
        """Four threads logging into one run under block through a slow sink: 0 lost."""
        sink = CountingSink(delay=0.001)
        dn.configure(sinks=[sink], batch_size=50, mailbox_size=100)
        with dn.run("threads") as run:
            contexts = [contextvars.copy_context() for _ in range(4)]
            threads = [
                threading.Thread(
                    target=context.run, args=(lambda: [dn.log_metric("m", i) for i in range(2000)],)
                )
                for context in contexts
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert sink.metrics == 8000
        assert run.stats["dropped"] == 0
        assert run._actor is not None
        assert run._actor.mailbox.statistics().high_water <= 100 + 4

    @pytest.mark.anyio
    async def test_sync_logging_from_a_coroutine_is_lossless(self) -> None:
        """log_metric from a coroutine (asyncio or trio) under block, slow sink: 0 lost."""
        sink = CountingSink(delay=0.001)
        dn.configure(sinks=[sink], batch_size=50, mailbox_size=100)
        async with dn.run("coroutine") as run:
            for i in range(3000):
                dn.log_metric("m", i)
        assert sink.metrics == 3000
        assert run.stats["dropped"] == 0

    @pytest.mark.anyio
    async def test_log_metric_async_keeps_the_loop_running(self) -> None:
        """Awaiting room leaves the caller's loop free: another task runs and unsticks the sink."""
        gate = threading.Event()
        sink = CountingSink(gate=gate)
        dn.configure(sinks=[sink], batch_size=10, mailbox_size=20, flush_interval=3600)
        done = anyio.Event()

        async def produce() -> None:
            for i in range(300):
                await dn.log_metric_async("m", i, step=i)
            done.set()

        async with dn.run("cooperative") as run:
            async with anyio.create_task_group() as group:
                group.start_soon(produce)
                # Every task blocked means the producer is awaiting room, not hogging the loop.
                await anyio.wait_all_tasks_blocked()
                assert not done.is_set()
                assert run.stats["queued"] >= 20
                gate.set()
        assert sink.values == [float(i) for i in range(300)]

    @pytest.mark.anyio
    async def test_wait_for_room_returns_at_once_when_there_is_room(self) -> None:
        """wait_for_room with room (or with no run at all) returns without waiting."""
        await dn.wait_for_room()
        dn.configure(sinks=[CountingSink()])
        async with dn.run("room"):
            with anyio.fail_after(5):
                await dn.wait_for_room()


class TestLargeValues:
    def test_pending_value_bytes_are_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Large inputs wait for the sink once too many bytes are pending; none is lost."""
        monkeypatch.setattr(actor_module, "MAX_PENDING_BLOB_BYTES", 3 * MIB)
        gate = threading.Event()
        sink = CountingSink(gate=gate)
        dn.configure(
            sinks=[sink], backpressure="drop_newest", flush_interval=3600, provenance=False
        )
        values = [os.urandom(MIB) for _ in range(12)]
        with dn.run("large") as run:
            producer = threading.Thread(
                target=contextvars.copy_context().run,
                args=(lambda: [dn.log_input(f"v{i}", v) for i, v in enumerate(values)],),
            )
            producer.start()
            actor = run._actor
            assert actor is not None
            assert _wait_until(lambda: actor.blob_bytes > 3 * MIB)
            assert producer.is_alive()  # waiting: the sink has taken nothing yet
            assert actor.blob_bytes <= 4 * MIB
            gate.set()
            producer.join()
        assert sink.blobs == {hashlib.sha256(msgspec.msgpack.encode(v)).hexdigest() for v in values}
        assert actor.blob_bytes == 0


class TestDropEndToEnd:
    @pytest.mark.parametrize("policy", DROP_POLICIES)
    def test_delivered_plus_dropped_is_produced(
        self, policy: Backpressure, store_dir: object
    ) -> None:
        """With a stuck sink, drops are counted exactly, stored in the record and warned once."""
        gate = threading.Event()
        sink = CountingSink(gate=gate)
        local = dn.LocalStore()
        dn.configure(
            sinks=[sink, local],
            batch_size=10,
            mailbox_size=20,
            flush_interval=3600,
            backpressure=policy,
        )
        with structlog.testing.capture_logs() as logs, dn.run("dropping") as run:
            for i in range(1000):
                dn.log_metric("m", i)
            gate.set()
        dropped = run.stats["dropped"]
        assert dropped > 0
        assert sink.metrics + dropped == 1000
        warnings = [e for e in logs if e["event"].startswith("strikes: mailbox full")]
        assert len(warnings) == 1
        assert warnings[0]["run_id"] == run.run_id
        record = dn.open_store(local.path).run(run.run_id)
        assert record.stats["dropped"] == dropped
        assert len(record.metrics["m"]) == sink.metrics
        # ... and reported as a run metric, once, at the end
        assert sink.reports == [float(dropped)]
        assert [p.value for p in record.metrics["strikes.dropped"]] == [float(dropped)]
        assert sink.values == sorted(set(sink.values))  # in order, none twice
        if policy == "drop_newest":  # what the mailbox held is kept: the first metrics fit
            # (beside the run's own events, which share the 20 slots)
            assert sink.values[:10] == [float(i) for i in range(10)]
        else:  # the newest survive
            assert sink.values[-1] == 999.0

    def test_no_warning_when_nothing_is_dropped(self) -> None:
        """A drop policy that never had to drop stays quiet and reports 0."""
        sink = CountingSink()
        dn.configure(sinks=[sink], backpressure="drop_newest")
        with structlog.testing.capture_logs() as logs, dn.run("quiet") as run:
            for i in range(100):
                dn.log_metric("m", i)
        assert run.stats["dropped"] == 0
        assert not [e for e in logs if e["event"].startswith("strikes: mailbox full")]
        assert sink.reports == []
