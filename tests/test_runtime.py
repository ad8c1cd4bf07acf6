"""The runtime: when batches are cut, where actors live, and what happens at exit and fork."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import strikes as dn
from strikes.events import Metric, RunFinished, RunStarted
from strikes.runtime.mailbox import Mailbox


def _wait_until(predicate: object, timeout: float = 10.0) -> bool:
    """Poll a condition the runtime thread makes true (there is nothing to await here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


class TestFlushTriggers:
    def test_flush_by_size(self, memory: dn.MemorySink) -> None:
        """A full batch is delivered without waiting for the interval or the run's end."""
        # provenance off: its event arrives when the capture ends and is delivered at
        # once, with whatever is pending, which would cut a batch at an arbitrary point
        dn.configure(
            sinks=[memory],
            batch_size=100,
            max_batch_size=100,
            flush_interval=3600,
            provenance=False,
        )
        with dn.run("sized"):
            for i in range(250):
                dn.log_metric("m", i)
            # 251 events with the run's start: two full batches go out, the tail of 51 waits
            assert _wait_until(lambda: len(memory.events) == 200)
            assert [len(batch.events) for batch in memory.batches] == [100, 100]
        assert len(memory.of_type(Metric)) == 250
        assert max(len(batch.events) for batch in memory.batches) <= 100

    def test_behind_by_batches_delivers_them_as_one_up_to_the_cap(
        self, memory: dn.MemorySink
    ) -> None:
        """A backlog of several batches goes out in batches of up to max_batch_size."""
        dn.configure(
            sinks=[memory],
            batch_size=100,
            mailbox_size=5000,
            flush_interval=3600,
            provenance=False,  # its event would be delivered at once, mid-backlog
        )
        with dn.run("behind") as run:
            actor = run._actor
            assert actor is not None
            actor.mailbox.wake_pending = True  # hold the wake-up: let a backlog build
            for i in range(2000):
                dn.log_metric("m", i)
            actor.mailbox.wake_pending = False
            dn.push_update()
        sizes = [len(batch.events) for batch in memory.batches]
        assert max(sizes) == 800  # 8 x batch_size, the default cap
        assert sum(sizes) == len(memory.events)
        assert [e.value for e in memory.of_type(Metric)] == [float(i) for i in range(2000)]

    def test_flush_by_age(self, memory: dn.MemorySink) -> None:
        """Fewer events than a batch are delivered once the flush interval passes."""
        dn.configure(sinks=[memory], batch_size=10_000, flush_interval=0.05)
        with dn.run("aged"):
            dn.log_metric("m", 1)
            assert _wait_until(lambda: len(memory.of_type(Metric)) == 1)

    def test_flush_by_push_update(self, memory: dn.MemorySink) -> None:
        """push_update() delivers everything and flushes every sink before it returns."""
        dn.configure(sinks=[memory], batch_size=10_000, flush_interval=3600)
        with dn.run("pushed"):
            dn.log_metric("m", 1)
            dn.log_metric("m", 2)
            flushes = memory.flushes
            dn.push_update()
            assert [m.value for m in memory.of_type(Metric)] == [1.0, 2.0]
            assert memory.flushes == flushes + 1

    def test_run_end_delivers_everything_in_order(self, memory: dn.MemorySink) -> None:
        """After a run exits every event is in the sink, in logging order, last batch final."""
        dn.configure(sinks=[memory], batch_size=64, flush_interval=3600)
        with dn.run("ordered") as run:
            for i in range(1000):
                dn.log_metric("m", i, step=i)
        events = [e for e in memory.events if e.run_id == run.run_id]
        assert type(events[0]) is RunStarted
        assert type(events[-1]) is RunFinished
        assert [m.step for m in memory.of_type(Metric)] == list(range(1000))
        assert [e.seq for e in events] == list(range(len(events)))
        assert memory.batches[-1].final

    def test_each_sink_gets_every_batch(self, store: dn.Store) -> None:
        """With two sinks, both receive the same events."""
        first, second = dn.MemorySink(), dn.MemorySink()
        dn.configure(sinks=[first, second, dn.LocalStore()])
        with dn.run("fan-out"):
            for i in range(300):
                dn.log_metric("m", i)
        assert first.events == second.events
        assert len(store.runs()[0].metrics["m"]) == 300


class TestWhereActorsRun:
    def test_import_starts_no_thread_and_creates_no_file(self, tmp_path: Path) -> None:
        """`import strikes` alone starts no thread and writes nothing."""
        code = "import threading, strikes; print(threading.active_count())"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "1"
        assert list(tmp_path.iterdir()) == []

    def test_flushing_goes_on_while_the_users_thread_is_busy(self, memory: dn.MemorySink) -> None:
        """The actor runs on its own thread: a caller stuck in CPU work does not stop flushing."""
        dn.configure(sinks=[memory], batch_size=10_000, flush_interval=0.02)
        with dn.run("busy"):
            dn.log_metric("m", 1)
            deadline = time.monotonic() + 10
            while not memory.of_type(Metric) and time.monotonic() < deadline:
                sum(range(10_000))  # busy: never yields, never awaits
            assert memory.of_type(Metric)

    def test_runtime_thread_is_a_daemon(self) -> None:
        """The runtime's thread never keeps the interpreter alive on its own."""
        with dn.run("r"):
            threads = [t for t in threading.enumerate() if t.name == "strikes-runtime"]
        assert len(threads) == 1
        assert threads[0].daemon


def _run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "STRIKES_DIR": str(tmp_path / "store")}
    return subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestExit:
    def test_exit_without_closing_the_run_flushes_everything(self, tmp_path: Path) -> None:
        """A process that exits with its run still open loses nothing it logged."""
        result = _run_script(
            tmp_path,
            """
            import strikes as dn
            dn.configure(flush_interval=3600, batch_size=100_000, mailbox_size=100_000)
            run = dn.run("left-open")
            run.__enter__()
            for i in range(5000):
                dn.log_metric("m", i, step=i)
            print(run.run_id)
            """,
        )
        assert result.returncode == 0, result.stderr
        record = dn.open_store(tmp_path / "store").run(result.stdout.strip())
        assert [p.step for p in record.metrics["m"]] == list(range(5000))
        assert record.status == "finished"

    def test_uncaught_exception_fails_the_run_and_keeps_data(self, tmp_path: Path) -> None:
        """A script dying of an exception inside `with run()` leaves a failed run with its data."""
        result = _run_script(
            tmp_path,
            """
            import strikes as dn
            with dn.run("crashing"):
                dn.log_metric("m", 1)
                raise SystemExit("stop here")
            """,
        )
        assert result.returncode == 1
        (record,) = dn.open_store(tmp_path / "store").runs()
        assert record.status == "failed"
        assert record.metrics["m"][0].value == 1.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
class TestFork:
    def test_forked_child_writes_through_its_own_runtime(self, store: dn.Store) -> None:
        """A forked child logs through a writer of its own; the parent's run ends once."""
        with dn.run("forking") as run:
            dn.log_metric("parent", 1)
            dn.push_update()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                try:
                    dn.log_metric("child", 2)
                    dn.push_update()
                finally:
                    os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0
            dn.log_metric("parent", 3)
        record = store.run(run.run_id)
        assert record.status == "finished"
        assert [p.value for p in record.metrics["parent"]] == [1.0, 3.0]
        assert [p.value for p in record.metrics["child"]] == [2.0]
        segments = list((store.path / "runs" / run.run_id / "segments").iterdir())
        assert len(segments) == 2  # one writer per process, never a shared file
        finished = [e for e in record.events if type(e) is RunFinished]
        assert len(finished) == 1


class TestMailbox:
    def _mailbox(self, policy: str, woken: list[int]) -> Mailbox[object]:
        return Mailbox(batch_size=2, max_size=4, policy=policy, wake=lambda: woken.append(1))  # type: ignore[arg-type]

    def test_wakes_once_per_due_batch(self) -> None:
        """The consumer is woken when a batch is due, not on every put."""
        woken: list[int] = []
        mailbox = self._mailbox("block", woken)
        mailbox.put(1)
        assert woken == []
        mailbox.put(2)
        mailbox.put(3)
        assert woken == [1]
        assert mailbox.drain(10) == [1, 2, 3]
        mailbox.put(4)
        mailbox.put(5)
        assert woken == [1, 1]

    def test_drop_newest_counts_and_keeps_structure(self) -> None:
        """drop_newest discards new metrics past max_size and counts them; other events get in."""
        mailbox = self._mailbox("drop_newest", [])
        metrics = [Metric("r" * 32, "s" * 16, "", i, 0, "m", float(i)) for i in range(6)]
        for metric in metrics:
            mailbox.put(metric)
        mailbox.put("structural")
        assert mailbox.statistics().dropped == 2
        assert mailbox.drain(100) == [*metrics[:4], "structural"]

    def test_drop_oldest_counts(self) -> None:
        """drop_oldest discards the oldest metrics past max_size and counts them."""
        mailbox = self._mailbox("drop_oldest", [])
        metrics = [Metric("r" * 32, "s" * 16, "", i, 0, "m", float(i)) for i in range(6)]
        for metric in metrics:
            mailbox.put(metric)
        assert mailbox.statistics().dropped == 2
        assert mailbox.drain(100) == metrics[2:]

    def test_block_waits_until_drained(self) -> None:
        """Under block, a producer past max_size waits until the consumer drains."""
        mailbox = self._mailbox("block", [])
        for i in range(4):
            mailbox.put(i)
        done = threading.Event()

        def producer() -> None:
            mailbox.put(4)
            done.set()

        thread = threading.Thread(target=producer)
        thread.start()
        assert not done.wait(0.1)
        assert mailbox.drain(3) == [0, 1, 2]
        assert done.wait(5)
        thread.join()
        assert mailbox.statistics().blocked == 1

    def test_arguments_are_checked(self) -> None:
        """Bad sizes and policies are refused with the argument's name."""
        with pytest.raises(ValueError, match="batch_size"):
            Mailbox(batch_size=0, max_size=4, policy="block", wake=lambda: None)
        with pytest.raises(ValueError, match="mailbox_size"):
            Mailbox(batch_size=8, max_size=4, policy="block", wake=lambda: None)
        with pytest.raises(ValueError, match="backpressure"):
            Mailbox(batch_size=1, max_size=4, policy="never", wake=lambda: None)  # type: ignore[arg-type]
