"""Sinks: the base class contract, MemorySink, ConsoleSink, and custom sinks."""

from __future__ import annotations

import pytest
import structlog

import strikes as dn
from strikes.events import Metric, RunFinished, RunProvenance, RunStarted
from strikes.sinks import Batch
from strikes.testing import capture


class RecordingSink(dn.Sink):
    """A custom sink recording the calls the runtime makes."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.run_ids: set[str] = set()

    async def open(self) -> None:
        self.calls.append("open")

    async def write(self, batch: Batch) -> None:
        self.calls.append("write")
        self.run_ids.add(batch.run_id)
        assert batch.encoded  # encoded on demand, then cached
        assert batch.encoded is batch.encoded

    async def flush(self) -> None:
        self.calls.append("flush")


class TestCustomSink:
    def test_lifecycle(self) -> None:
        """open() once, then writes, then flush() at the run's end; batches carry the run id."""
        sink = RecordingSink()
        dn.configure(sinks=[sink])
        with dn.run("a") as first:
            dn.log_metric("m", 1)
        with dn.run("b") as second:
            dn.log_metric("m", 1)
        assert sink.calls.count("open") == 1
        assert sink.calls[0] == "open"
        assert sink.calls.count("flush") == 2
        assert sink.run_ids == {first.run_id, second.run_id}

    def test_write_is_abstract(self) -> None:
        """A Sink subclass must implement write()."""

        class Incomplete(dn.Sink):
            pass

        with pytest.raises(TypeError, match="write"):
            Incomplete()  # type: ignore[abstract]

    def test_failing_sink_does_not_stop_the_others_or_the_user(self) -> None:
        """A sink that always raises is retried, then given up; the others get everything."""

        class Broken(dn.Sink):
            async def write(self, batch: Batch) -> None:
                raise OSError("disk on fire")

        healthy = dn.MemorySink()
        dn.configure(
            sinks=[Broken(), healthy], delivery=dn.DeliveryPolicy(attempts=2, backoff=0.001)
        )
        with structlog.testing.capture_logs() as logs, dn.run("r") as run:
            dn.log_metric("m", 1)
        assert healthy.metrics() == {"m": [1.0]}
        # run started, provenance, metric, run finished: kept for resend_spool(), not lost
        assert run.stats["spooled"] == 4
        assert run.stats["undelivered"] == 0
        assert any(entry["event"].startswith("strikes: sink gave up on a batch") for entry in logs)


class TestMemorySink:
    def test_keeps_events_in_order_by_kind(self) -> None:
        """MemorySink keeps every event; of_type and metrics filter them."""
        with capture() as sink, dn.run("r") as run:
            dn.log_metric("a", 1)
            dn.log_metric("b", 2)
        assert type(sink.events[0]) is RunStarted
        assert type(sink.events[-1]) is RunFinished
        assert [m.name for m in sink.of_type(Metric, run.run_id)] == ["a", "b"]
        assert sink.metrics(run.run_id) == {"a": [1.0], "b": [2.0]}
        sink.clear()
        assert sink.events == []

    def test_capture_restores_the_settings(self, store: dn.Store) -> None:
        """After capture() the previous settings (the local store) apply again."""
        with capture() as sink, dn.run("captured"):
            pass
        with dn.run("stored"):
            pass
        assert [type(e) for e in sink.events] == [RunStarted, RunProvenance, RunFinished]
        assert [r.name for r in store.runs()] == ["stored"]


def test_strikes_capture_fixture(strikes_capture: dn.MemorySink) -> None:
    """The pytest fixture installed by strikes captures a test's runs."""
    with dn.run("in-test"):
        dn.log_metric("score", 1)
    assert strikes_capture.metrics() == {"score": [1.0]}


class TestConsoleSink:
    def test_logs_each_event_through_structlog(self) -> None:
        """ConsoleSink turns each event into one structlog entry."""
        dn.configure(sinks=[dn.ConsoleSink()], provenance=False)  # its place varies
        with structlog.testing.capture_logs() as logs, dn.run("console"):
            dn.log_metric("loss", 0.5, step=1)
            dn.log_param("lr", 0.1)
        kinds = [entry["event"] for entry in logs]
        assert kinds == ["run_started", "metric", "param", "run_finished"]
        metric = logs[1]
        assert (metric["name"], metric["value"], metric["step"]) == ("loss", 0.5, 1)

    def test_metrics_can_be_left_out(self) -> None:
        """ConsoleSink(metrics=False) skips metric events."""
        dn.configure(sinks=[dn.ConsoleSink(metrics=False)], provenance=False)
        with structlog.testing.capture_logs() as logs, dn.run("quiet"):
            dn.log_metric("loss", 0.5)
        assert [entry["event"] for entry in logs] == ["run_started", "run_finished"]
