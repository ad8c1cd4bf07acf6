"""Crash safety: kill -9 at random points, SIGTERM, and forked children."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import strikes as dn
from strikes.events import RunFinished
from strikes.runtime import loop
from strikes.store.segments import frame

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CRASH_TRIALS = 30

WRITER = """
import strikes as dn
dn.configure(flush_interval=3600, batch_size=100, mailbox_size=1000)
with dn.run("victim") as run:
    print(run.run_id, flush=True)
    i = 0
    while True:
        dn.log_metric("m", i, step=i)
        i += 1
        if i % 250 == 0:
            dn.push_update()
            print(i, flush=True)
"""


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return path


def _env(store: Path) -> dict[str, str]:
    return {**os.environ, "STRIKES_DIR": str(store)}


def _run_script(
    tmp_path: Path, body: str, *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(_script(tmp_path, body))],
        env=_env(tmp_path / "store"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def crash_trial(directory: Path, seed: int) -> tuple[int, int, int]:
    """Kill a writer at a random point; check the store; return (flushed, read, torn bytes)."""
    rng = random.Random(seed)
    directory.mkdir()
    script = _script(directory, WRITER)
    store = directory / "store"
    with subprocess.Popen(
        [sys.executable, str(script)],
        env=_env(store),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None
        run_id = process.stdout.readline().strip()
        flushed = 0
        for _ in range(rng.randint(0, 8)):
            flushed = int(process.stdout.readline())
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    if not (store / "runs" / run_id / "segments").exists():
        assert flushed == 0  # killed before its first batch: nothing was flushed
        return 0, 0, 0
    record = dn.open_store(store).run(run_id)
    steps = [point.step for point in record.metrics.get("m", [])]
    assert steps == list(range(len(steps)))  # a prefix: nothing reordered, nothing skipped
    assert len(steps) >= flushed  # everything flushed before the kill is readable
    assert record.status == "running"  # the writer died: no RunFinished
    assert record.last_seen is not None
    # A torn last record (the kill landing mid-write) is skipped: simulate one.
    (segment,) = (store / "runs" / run_id / "segments").iterdir()
    torn = frame(b"\x93" + bytes(rng.randrange(256) for _ in range(300)))
    with segment.open("ab") as handle:
        handle.write(torn[: rng.randint(1, len(torn) - 1)])
    again = dn.open_store(store).run(run_id)
    assert [point.step for point in again.metrics.get("m", [])] == steps
    assert again.read_report.torn_bytes > 0
    return flushed, len(steps), again.read_report.torn_bytes


class TestKill9:
    @pytest.mark.slow
    def test_kill_at_random_points_keeps_every_flushed_event(self, tmp_path: Path) -> None:
        """30 writers killed with SIGKILL at random points: each store reads back a prefix."""
        seeds = range(CRASH_TRIALS)
        with ThreadPoolExecutor(3) as pool:
            results = list(
                pool.map(lambda seed: crash_trial(tmp_path / f"trial-{seed}", seed), seeds)
            )
        assert len(results) == CRASH_TRIALS
        assert any(flushed > 0 for flushed, _, _ in results)


class TestSigterm:
    def test_sigterm_flushes_then_dies_of_the_signal(self, tmp_path: Path) -> None:
        """SIGTERM flushes everything, marks the open run failed, and the process dies of it."""
        result = _run_script(
            tmp_path,
            """
            import os, signal, time
            import strikes as dn
            dn.configure(flush_interval=3600, batch_size=100_000, mailbox_size=100_000)
            run = dn.run("terminated")
            run.__enter__()
            for i in range(5000):
                dn.log_metric("m", i, step=i)
            print(run.run_id, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
            print("survived", flush=True)
            """,
        )
        assert result.returncode == -signal.SIGTERM, result.stderr
        assert "survived" not in result.stdout
        record = dn.open_store(tmp_path / "store").run(result.stdout.split()[0])
        assert [p.step for p in record.metrics["m"]] == list(range(5000))
        assert record.status == "failed"
        assert record.error == "terminated by SIGTERM"

    def test_sigterm_while_blocked_on_a_full_mailbox(self, tmp_path: Path) -> None:
        """A producer waiting for room when SIGTERM arrives does not deadlock the flush."""
        result = _run_script(
            tmp_path,
            """
            import asyncio, os, signal, threading
            import strikes as dn

            class SlowStore(dn.LocalStore):
                async def write(self, batch):
                    await asyncio.sleep(0.02)
                    await super().write(batch)

            dn.configure(sinks=[SlowStore()], batch_size=10, mailbox_size=10)
            with dn.run("stuck") as run:
                print(run.run_id, flush=True)
                for i in range(200):
                    dn.log_metric("m", i, step=i)
                # the next puts block on the slow sink; SIGTERM lands meanwhile
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
                i = 200
                while True:
                    dn.log_metric("m", i, step=i)
                    i += 1
            """,
            timeout=30,
        )
        assert result.returncode == -signal.SIGTERM, result.stderr
        record = dn.open_store(tmp_path / "store").run(result.stdout.split()[0])
        steps = [p.step for p in record.metrics["m"]]
        assert steps[:200] == list(range(200))
        assert record.status == "failed"
        assert record.error == "terminated by SIGTERM"

    def test_an_existing_handler_is_chained(self, tmp_path: Path) -> None:
        """A handler set before strikes started is still called, and decides how to exit."""
        result = _run_script(
            tmp_path,
            """
            import os, signal, sys, time
            def handler(signum, frame):
                print("user handler", flush=True)
                sys.exit(3)
            signal.signal(signal.SIGTERM, handler)
            import strikes as dn
            with dn.run("chained") as run:
                print(run.run_id, flush=True)
                dn.log_metric("m", 1)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)
            """,
        )
        assert result.returncode == 3, result.stderr
        run_id, said = result.stdout.split("\n")[:2]
        assert said == "user handler"
        record = dn.open_store(tmp_path / "store").run(run_id)
        assert record.metrics["m"][0].value == 1.0
        assert record.status == "failed"  # SystemExit went through `with run()`

    def test_an_ignored_sigterm_stays_ignored(self, tmp_path: Path) -> None:
        """strikes installs nothing over SIG_IGN."""
        result = _run_script(
            tmp_path,
            """
            import signal
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            import strikes as dn
            with dn.run("ignored"):
                print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)
            """,
        )
        assert result.stdout.strip() == "True", result.stderr

    def test_no_handler_when_the_runtime_starts_off_the_main_thread(self, tmp_path: Path) -> None:
        """Signal handlers belong to the main thread: a runtime started elsewhere sets none."""
        result = _run_script(
            tmp_path,
            """
            import signal, threading
            import strikes as dn
            def work():
                with dn.run("threaded"):
                    dn.log_metric("m", 1)
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
            print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
            """,
        )
        assert result.stdout.strip() == "True", result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
class TestFork:
    def test_child_never_writes_through_the_parents_runtime(self, store: dn.Store) -> None:
        """After fork the child has no runtime and no writer until it logs, then its own."""
        with dn.run("forking") as run:
            dn.log_metric("parent", 1)
            dn.push_update()
            parent_runtime = loop.get_runtime()
            parent_events = run.stats["events"]
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    fresh = loop._runtime is None and run._actor is None
                    dn.log_metric("child", 2)
                    child_actor = run._actor
                    own = (
                        child_actor is not None
                        and child_actor.runtime is not parent_runtime
                        and child_actor.runtime.pid == os.getpid()
                        and not child_actor.owner
                    )
                    dn.push_update()
                    code = 0 if fresh and own else 1
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert run.stats["events"] == parent_events  # nothing came through the parent
        record = store.run(run.run_id)
        assert [p.value for p in record.metrics["child"]] == [2.0]
        assert len([e for e in record.events if type(e) is RunFinished]) == 1

    def test_a_child_exiting_normally_does_not_end_the_parents_run(self, tmp_path: Path) -> None:
        """A forked child that exits through the interpreter flushes its data, not the run's end."""
        result = _run_script(
            tmp_path,
            """
            import os, sys
            import strikes as dn
            with dn.run("parent") as run:
                print(run.run_id, flush=True)
                dn.log_metric("m", 1)
                pid = os.fork()
                if pid == 0:
                    dn.log_metric("child", 2)
                    sys.exit(0)  # the interpreter's exit hooks run in the child
                os.waitpid(pid, 0)
                dn.push_update()
                print(dn.open_store().run(run.run_id).status, flush=True)
                dn.log_metric("m", 3)
            """,
        )
        assert result.returncode == 0, result.stderr
        run_id, status_while_open = result.stdout.split()[:2]
        assert status_while_open == "running"
        record = dn.open_store(tmp_path / "store").run(run_id)
        assert record.status == "finished"
        assert [p.value for p in record.metrics["child"]] == [2.0]
        assert [p.value for p in record.metrics["m"]] == [1.0, 3.0]
