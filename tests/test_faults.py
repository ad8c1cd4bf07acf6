"""Sink faults: retries with backoff, spooling what a sink cannot take, and re-sending it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog.testing

import strikes as dn
from strikes.events import Metric
from strikes.runtime.spool import read_spool_file, spool_files
from strikes.sinks.base import Batch

FAST = dn.DeliveryPolicy(attempts=3, backoff=0.001, timeout=5.0, probe=3600.0)


class FlakySink(dn.Sink):
    """Raises on its first ``failures`` writes, then takes every batch."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.events: list[object] = []

    async def write(self, batch: Batch) -> None:
        """Fail while failures are left, else keep the events."""
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("collector unreachable")
        self.events.extend(batch.events)

    def metric_values(self) -> list[float]:
        """Values of the metrics received, in order."""
        return [e.value for e in self.events if type(e) is Metric]


class HangingSink(dn.Sink):
    """Never finishes a write."""

    async def write(self, batch: Batch) -> None:
        """Wait forever."""
        await asyncio.Event().wait()


def _log_steps(count: int) -> None:
    for i in range(count):
        dn.log_metric("m", i, step=i)


class TestRetries:
    def test_sink_failing_fewer_times_than_attempts_gets_everything(self) -> None:
        """A sink that fails twice then recovers loses nothing; each retry is logged."""
        sink = FlakySink(failures=2)
        dn.configure(sinks=[sink], delivery=FAST)
        with structlog.testing.capture_logs() as logs, dn.run("flaky") as run:
            _log_steps(10)
        assert sink.metric_values() == [float(i) for i in range(10)]
        retries = [e for e in logs if e["event"] == "strikes: sink failed, retrying"]
        assert [e["attempt"] for e in retries] == [1, 2]
        assert all(e["sink"] == "FlakySink" and e["run_id"] == run.run_id for e in retries)
        assert all(e["events"] > 0 for e in retries)
        assert run.stats["spooled"] == 0

    def test_hanging_sink_times_out_and_the_others_get_everything(self, store_dir: Path) -> None:
        """A sink that never answers is timed out and spooled; the user and other sinks go on."""
        healthy = dn.MemorySink()
        dn.configure(
            sinks=[HangingSink(), healthy],
            delivery=dn.DeliveryPolicy(attempts=2, backoff=0.001, timeout=0.05, probe=3600),
        )
        with structlog.testing.capture_logs() as logs, dn.run("hang") as run:
            _log_steps(5)
        assert healthy.metrics(run.run_id) == {"m": [float(i) for i in range(5)]}
        gave_up = [e for e in logs if e["event"].startswith("strikes: sink gave up")]
        assert gave_up
        assert gave_up[0]["error"] == "timed out"
        assert gave_up[0]["sink"] == "HangingSink"
        assert run.stats["spooled"] == run.stats["events"]
        assert spool_files(store_dir / "spool", "HangingSink")

    def test_slow_sink_delays_but_loses_nothing(self) -> None:
        """A sink slower than the producer still receives every event, in order."""

        class Slow(FlakySink):
            async def write(self, batch: Batch) -> None:
                await asyncio.sleep(0.002)
                await super().write(batch)

        sink = Slow(failures=0)
        dn.configure(sinks=[sink], batch_size=20, mailbox_size=40)
        with dn.run("slow"):
            _log_steps(400)
        assert sink.metric_values() == [float(i) for i in range(400)]


class TestSpool:
    def test_a_down_sink_is_skipped_until_its_probe_time(self, store_dir: Path) -> None:
        """After giving up once, batches go straight to the spool: no more waiting on it."""
        sink = FlakySink(failures=10**9)
        dn.configure(sinks=[sink], delivery=FAST, batch_size=10, mailbox_size=10)
        with structlog.testing.capture_logs() as logs, dn.run("down") as run:
            _log_steps(200)
        assert sink.calls == FAST.attempts  # only the first batch was tried
        files = spool_files(store_dir / "spool", "FlakySink")
        spooled = [read_spool_file(path) for path in files]
        assert all(s is not None and s.run_id == run.run_id for s in spooled)
        assert run.stats["spooled"] == run.stats["events"]
        assert run.stats["undelivered"] == 0
        faults = [e for e in logs if e["event"].startswith("strikes: sink gave up")]
        assert len(faults) == len(files)
        assert all({"sink", "run_id", "events"} <= e.keys() for e in faults)

    def test_a_down_sink_is_probed_and_recovers(self) -> None:
        """Once its probe time has come, one write tries the sink again; success ends the outage."""
        sink = FlakySink(failures=FAST.attempts)
        dn.configure(sinks=[sink], delivery=FAST._replace(probe=0.0), flush_interval=3600)
        with structlog.testing.capture_logs() as logs, dn.run("probe"):
            dn.log_metric("m", 0)
            dn.push_update()  # fails every attempt: spooled
            dn.log_metric("m", 1)
            dn.push_update()  # one probe, which succeeds
        assert sink.metric_values() == [1.0]
        assert any(e["event"] == "strikes: sink recovered" for e in logs)

    def test_resend_delivers_the_spool_in_order_and_empties_it(self, store_dir: Path) -> None:
        """resend_spool hands every spooled batch to the sink, oldest first, then deletes them."""
        failing = FlakySink(failures=10**9)
        dn.configure(sinks=[failing], delivery=FAST, batch_size=10, mailbox_size=10)
        with dn.run("outage") as run:
            _log_steps(95)
        assert failing.metric_values() == []
        failing.failures = 0
        report = dn.resend_spool(failing)
        assert failing.metric_values() == [float(i) for i in range(95)]
        assert report.events == run.stats["events"]
        assert report.remaining == 0
        assert spool_files(store_dir / "spool", "FlakySink") == []
        assert dn.resend_spool(failing).batches == 0  # nothing twice

    def test_resend_into_the_local_store_makes_the_run_readable(self, store_dir: Path) -> None:
        """A run whose local store failed throughout is complete in the store after a resend."""

        class BrokenStore(dn.LocalStore):
            broken = True

            async def write(self, batch: Batch) -> None:
                if self.broken:
                    raise OSError(28, "No space left on device")
                await super().write(batch)

        local = BrokenStore()
        dn.configure(sinks=[local], delivery=FAST, batch_size=10, mailbox_size=10)
        with dn.run("disk-full") as run:
            _log_steps(35)
            dn.log_param("lr", 0.1)
        local.broken = False
        report = dn.resend_spool(local)
        assert report.remaining == 0
        record = dn.open_store(store_dir).run(run.run_id)
        assert [p.step for p in record.metrics["m"]] == list(range(35))
        assert record.params == {"lr": 0.1}
        assert record.status == "finished"

    def test_a_run_whose_end_was_spooled_lists_as_finished_after_resend(
        self, store_dir: Path
    ) -> None:
        """The local store rebuilds the manifest of every run a resend touched."""

        class FailsAtTheEnd(dn.LocalStore):
            broken = False

            async def write(self, batch: Batch) -> None:
                if self.broken:
                    raise OSError(28, "No space left on device")
                await super().write(batch)

        local = FailsAtTheEnd()
        dn.configure(sinks=[local], delivery=FAST, flush_interval=3600)
        with dn.run("late-end") as run:
            dn.log_metric("m", 1)
            dn.push_update()
            local.broken = True
            dn.log_metric("m", 2)
        (listed,) = dn.open_store(store_dir).runs()
        assert listed.status == "running"  # its end never reached the store
        local.broken = False
        dn.resend_spool(local)
        (listed,) = dn.open_store(store_dir).runs()
        assert listed.status == "finished"
        assert listed.manifest.metrics["m"].count == 2
        assert [p.value for p in dn.open_store(store_dir).run(run.run_id).metrics["m"]] == [1, 2]

    def test_a_failed_resend_keeps_the_rest(self, store_dir: Path) -> None:
        """When the sink fails again during a resend, unsent batches stay spooled."""
        sink = FlakySink(failures=10**9)
        dn.configure(sinks=[sink], delivery=FAST, batch_size=10, mailbox_size=10)
        with dn.run("still-down"):
            _log_steps(30)
        before = spool_files(store_dir / "spool", "FlakySink")
        report = dn.resend_spool(sink)
        assert report.batches == 0
        assert report.remaining == len(before)
        assert report.error is not None
        assert "collector unreachable" in report.error
        assert spool_files(store_dir / "spool", "FlakySink") == before

    def test_unreadable_spool_files_are_reported_and_kept(self, store_dir: Path) -> None:
        """A torn or foreign file in the spool is kept for a human and named in the report."""
        directory = store_dir / "spool" / "FlakySink"
        directory.mkdir(parents=True)
        junk = directory / "0-junk.spool"
        junk.write_bytes(b"STRKSPL\x01\x10\x00")
        report = dn.resend_spool(FlakySink(failures=0))
        assert report.unreadable == [junk]
        assert junk.exists()

    def test_spool_path_can_be_given(self, tmp_path: Path) -> None:
        """resend_spool(path=...) reads another spool directory."""
        sink = FlakySink(failures=10**9)
        dn.configure(sinks=[sink], delivery=FAST, dir=tmp_path / "elsewhere")
        with dn.run("elsewhere"):
            dn.log_metric("m", 7)
        sink.failures = 0
        assert dn.resend_spool(sink, path=tmp_path / "other").batches == 0
        report = dn.resend_spool(sink, path=tmp_path / "elsewhere" / "spool")
        assert report.batches >= 1
        assert sink.metric_values() == [7.0]

    def test_unwritable_spool_counts_undelivered_and_never_crashes(self, tmp_path: Path) -> None:
        """If even the spool cannot be written, the events are counted as undelivered and logged."""
        root = tmp_path / "store"
        root.mkdir()
        (root / "spool").write_text("a file where the spool directory should be")
        healthy = dn.MemorySink()
        dn.configure(sinks=[FlakySink(failures=10**9), healthy], delivery=FAST, dir=root)
        with structlog.testing.capture_logs() as logs, dn.run("nowhere") as run:
            dn.log_metric("m", 1)
        assert run.stats["undelivered"] == run.stats["events"]
        assert run.stats["spooled"] == 0
        lost = [e for e in logs if e["event"].endswith("it is lost for this sink")]
        assert lost
        assert lost[0]["spool_error"]
        assert healthy.metrics(run.run_id) == {"m": [1.0]}

    def test_spooling_can_be_turned_off(self, store_dir: Path) -> None:
        """configure(spool=False) counts what a sink gave up on as undelivered, writing nothing."""
        dn.configure(sinks=[FlakySink(failures=10**9)], delivery=FAST, spool=False)
        with dn.run("no-spool") as run:
            dn.log_metric("m", 1)
        assert run.stats["undelivered"] == run.stats["events"]
        assert not (store_dir / "spool").exists()

    def test_resend_refuses_what_is_not_a_sink(self) -> None:
        """resend_spool names its argument when it is not a Sink."""
        with pytest.raises(TypeError, match="sink must be a Sink"):
            dn.resend_spool("LocalStore")  # type: ignore[arg-type]
