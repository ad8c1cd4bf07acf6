"""Provenance, system metrics and the heartbeat in real runs, stored and read back."""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

import strikes as dn
from _git import git
from strikes import _provenance, cli
from strikes.events import Metric, RunFinished, RunProvenance, RunStarted
from strikes.store.query import RUN_COLUMNS

pytestmark = pytest.mark.usefixtures("no_user_git")

SAMPLER_THREAD = "strikes-system-metrics"
SYS_KEYS = {
    "sys.cpu.process_percent",
    "sys.cpu.machine_percent",
    "sys.memory.rss_bytes",
    "sys.memory.machine_percent",
}


@pytest.fixture
def repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory: the conftest's repository with one commit on ``main``."""
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory: a plain directory in no repository."""
    directory = tmp_path / "plain"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def objects(store: dn.Store) -> list[Path]:
    return [p for p in store.layout.objects.rglob("*") if p.is_file()]


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == SAMPLER_THREAD and t.is_alive()]


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll until ``condition()`` holds; the test's timeout bounds the wait."""
    while not condition():
        time.sleep(0.01)


def wait_for_samples(sink: dn.MemorySink, count: int) -> None:
    """Flush the current run until ``sink`` holds ``count`` samples of the sampler."""

    def enough() -> bool:
        dn.push_update()
        return len(sink.metrics().get("sys.memory.rss_bytes", [])) >= count

    wait_for(enough)


def gpus() -> int:
    """How many GPUs NVML sees here (0 without the bindings, the driver or a GPU)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


class TestProvenanceInRuns:
    def test_clean_repository(self, repo: Path, store: dn.Store) -> None:
        """A run in a clean checkout records HEAD, the branch, clean, and the whole context."""
        with dn.run("clean") as run:
            pass
        provenance = store.run(run.run_id).provenance
        assert provenance is not None
        assert provenance.git_commit == git(repo, "rev-parse", "HEAD").decode().strip()
        assert provenance.git_branch == "main"
        assert provenance.git_dirty is False
        assert provenance.git_diff_hash is None
        assert provenance.cwd == str(repo)
        assert provenance.command == sys.argv
        assert provenance.pid == os.getpid()
        assert provenance.python_version == ".".join(map(str, sys.version_info[:3]))
        assert provenance.hostname
        assert provenance.platform

    def test_dirty_repository_keeps_the_diff_when_asked(self, repo: Path, store: dn.Store) -> None:
        """A modified file makes the run dirty; git_diff=True stores the diff as an object."""
        (repo / "train.py").write_text("print('v2')\n")
        dn.configure(provenance=dn.ProvenanceOptions(git_diff=True))
        with dn.run("dirty") as run:
            pass
        record = store.run(run.run_id)
        assert record.provenance is not None
        assert record.provenance.git_dirty is True
        diff = record.git_diff
        assert diff is not None
        assert b"+print('v2')" in diff
        assert hashlib.sha256(diff).hexdigest() == record.provenance.git_diff_hash

    def test_dirty_repository_hashes_the_diff_by_default(self, repo: Path, store: dn.Store) -> None:
        """By default a dirty run has the diff's hash but the diff is not stored."""
        (repo / "train.py").write_text("print('v3')\n")
        with dn.run("dirty") as run:
            pass
        record = store.run(run.run_id)
        assert record.provenance is not None
        assert record.provenance.git_dirty is True
        assert record.provenance.git_diff_hash is not None
        assert record.git_diff is None
        assert not (store.layout.objects / record.provenance.git_diff_hash[:2]).exists()

    def test_outside_a_repository(self, outside: Path, store: dn.Store) -> None:
        """Outside a repository the git fields are empty; the rest is captured."""
        with dn.run("plain") as run:
            pass
        provenance = store.run(run.run_id).provenance
        assert provenance is not None
        assert provenance.git_commit is None
        assert provenance.git_dirty is None
        assert provenance.cwd == str(outside)
        assert provenance.packages_hash is not None

    def test_runs_starting_together_share_one_look_at_git(
        self, repo: Path, store: dn.Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """100 gathered runs ask git once; after GIT_REUSE_SECONDS a run asks again."""
        looks: list[Path] = []
        capture_git = _provenance._capture_git

        def counting(directory: Path, diff_blobs: dict[str, bytes] | None) -> object:
            looks.append(directory)
            return capture_git(directory, diff_blobs)

        monkeypatch.setattr(_provenance, "_capture_git", counting)

        async def one(index: int) -> None:
            async with dn.run(f"r{index}"):
                await anyio.sleep(0)

        async def sweep() -> None:
            async with anyio.create_task_group() as group:
                for index in range(100):
                    group.start_soon(one, index)

        anyio.run(sweep)
        assert looks == [repo]
        commits = {record.provenance.git_commit for record in store.runs() if record.provenance}
        assert len(commits) == 1
        assert None not in commits
        monkeypatch.setattr(_provenance, "GIT_REUSE_SECONDS", 0.0)
        (repo / "train.py").write_text("print('edited')\n")
        with dn.run("later") as run:
            pass
        assert looks == [repo, repo]
        assert store.run(run.run_id).provenance.git_dirty is True  # type: ignore[union-attr]

    def test_package_list_is_one_object_for_many_runs(self, outside: Path, store: dn.Store) -> None:
        """Twenty runs in one environment share one package-list object."""
        for index in range(20):
            with dn.run(f"r{index}"):
                dn.log_metric("m", index)
        hashes = {record.provenance.packages_hash for record in store.runs() if record.provenance}
        assert len(hashes) == 1
        assert [p.name for p in objects(store)] == list(hashes)
        packages = store.runs()[0].packages
        assert packages is not None
        assert packages["msgspec"] == msgspec.__version__

    def test_provenance_comes_once_before_run_finished(
        self, outside: Path, memory: dn.MemorySink
    ) -> None:
        """One provenance event per run, after run_started and before run_finished."""
        with dn.run("ordered") as run:
            for step in range(100):
                dn.log_metric("m", step, step=step)
        kinds = [type(event) for event in memory.events if event.run_id == run.run_id]
        assert kinds[0] is RunStarted
        assert kinds[-1] is RunFinished
        assert kinds.count(RunProvenance) == 1
        seqs = [event.seq for event in memory.events]
        assert seqs == sorted(seqs)
        (event,) = memory.of_type(RunProvenance)
        assert event.provenance.packages_hash in memory.blobs

    def test_visible_while_the_run_is_open(self, outside: Path, store: dn.Store) -> None:
        """After push_update() a reader sees the provenance of a run still running."""
        with dn.run("open") as run:
            dn.push_update()
            record = store.run(run.run_id)
            assert record.status == "running"
            assert record.provenance is not None
            assert record.provenance.pid == os.getpid()

    @pytest.mark.anyio
    async def test_async_run(self, outside: Path, store: dn.Store) -> None:
        """``async with`` runs capture provenance too, on asyncio and trio."""
        async with dn.run("async") as run:
            await dn.push_update_async()
        provenance = store.run(run.run_id).provenance
        assert provenance is not None
        assert provenance.cwd == str(outside)

    def test_rebuilt_manifest_keeps_provenance(self, outside: Path, store: dn.Store) -> None:
        """A run whose manifest is lost gets its provenance back from the events."""
        with dn.run("lost") as run:
            pass
        store.layout.manifest(run.run_id).unlink()
        provenance = store.run(run.run_id).provenance
        assert provenance is not None
        assert provenance.cwd == str(outside)

    def test_gc_keeps_the_package_list_while_a_run_uses_it(
        self, outside: Path, store: dn.Store
    ) -> None:
        """The package-list object survives gc until the last run using it is removed."""
        with dn.run("a"):
            pass
        with dn.run("b"):
            pass
        (package_list,) = objects(store)
        store.remove("a")
        assert store.collect_garbage(grace=0).files == 0
        assert package_list.exists()
        store.remove("b")
        assert store.collect_garbage(grace=0).files == 1
        assert not package_list.exists()


class TestTurningProvenanceOff:
    def test_off_for_all_runs(self, outside: Path, store: dn.Store) -> None:
        """configure(provenance=False): no event, no object, provenance None."""
        sink = dn.MemorySink()
        dn.configure(sinks=[sink, dn.LocalStore()], provenance=False)
        with dn.run("off") as run:
            dn.log_metric("m", 1)
        assert sink.of_type(RunProvenance) == []
        assert store.run(run.run_id).provenance is None
        assert store.run(run.run_id).packages is None
        assert objects(store) == []

    def test_per_run_overrides_configure(self, outside: Path, store: dn.Store) -> None:
        """run(provenance=...) wins over configure() in both directions."""
        dn.configure(provenance=False)
        with dn.run("on", provenance=True) as on:
            pass
        dn.configure()
        with dn.run("off", provenance=False) as off:
            pass
        assert store.run(on.run_id).provenance is not None
        assert store.run(off.run_id).provenance is None

    def test_parts_switched_off(self, repo: Path, store: dn.Store) -> None:
        """Each part left out leaves its fields empty; no packages means no object."""
        options = dn.ProvenanceOptions(git=False, packages=False, env=False)
        with dn.run("some", provenance=options) as run:
            pass
        provenance = store.run(run.run_id).provenance
        assert provenance is not None
        assert provenance.git_commit is None
        assert provenance.packages_hash is None
        assert provenance.env == {}
        assert provenance.python_version is not None
        assert provenance.command is not None
        assert objects(store) == []

    def test_parts_from_the_environment(
        self, repo: Path, store: dn.Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """STRIKES_PROVENANCE lists the parts to capture, or turns it all off."""
        monkeypatch.setenv("STRIKES_PROVENANCE", "git,python")
        with dn.run("env-parts") as run:
            pass
        provenance = store.run(run.run_id).provenance
        assert provenance is not None
        assert provenance.git_commit is not None
        assert provenance.python_version is not None
        assert provenance.command is None
        assert provenance.packages_hash is None
        monkeypatch.setenv("STRIKES_PROVENANCE", "off")
        dn.configure()
        with dn.run("env-off") as run:
            pass
        assert store.run(run.run_id).provenance is None

    def test_bad_values_are_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A wrong type or an unknown part is an error naming the argument."""
        with pytest.raises(TypeError, match="provenance"):
            dn.run(provenance="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="provenance"):
            dn.configure(provenance={"git": True})  # type: ignore[arg-type]
        monkeypatch.setenv("STRIKES_PROVENANCE", "git,gpu")
        with pytest.raises(ValueError, match=r"STRIKES_PROVENANCE.*gpu"):
            dn.configure()


class TestOtherWriters:
    def test_a_continuing_process_does_not_capture(
        self, outside: Path, store: dn.Store, store_dir: Path
    ) -> None:
        """Only the process that opened the run captures provenance, not continue_run()."""
        with dn.run("shared") as run:
            context = dn.get_run_context()
            code = "import strikes as dn\nwith dn.continue_run():\n    dn.log_metric('worker', 1)\n"
            env = {**os.environ, **context.to_env(), "STRIKES_DIR": str(store_dir)}
            subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
        record = store.run(run.run_id)
        assert [p.value for p in record.metrics["worker"]] == [1.0]
        captured = [event for event in record.events if type(event) is RunProvenance]
        assert len(captured) == 1
        assert captured[0].provenance.pid == os.getpid()

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_forked_child_has_no_sampler_and_no_capture(
        self, outside: Path, store: dn.Store
    ) -> None:
        """A child forked while the sampler runs has no sampler thread and captures nothing."""
        pytest.importorskip("psutil")
        with dn.run("forking", system_metrics=0.01) as run:
            wait_for(lambda: bool(sampler_threads()))
            dn.push_update()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    dn.log_metric("child_samplers", len(sampler_threads()))
                    dn.push_update()
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert status == 0
        record = store.run(run.run_id)
        assert [p.value for p in record.metrics["child_samplers"]] == [0.0]
        assert len([e for e in record.events if type(e) is RunProvenance]) == 1


@pytest.mark.usefixtures("outside")
class TestSystemMetrics:
    @pytest.fixture(autouse=True)
    def _psutil(self) -> None:
        pytest.importorskip("psutil")

    def test_sampler_logs_sys_metrics_into_the_run(self, store: dn.Store) -> None:
        """With the sampler on, sys.* metrics are ordinary metrics of the stored run."""
        sink = dn.MemorySink()
        dn.configure(sinks=[sink, dn.LocalStore()])
        with dn.run("sampled", system_metrics=0.01) as run:
            wait_for_samples(sink, 2)
        record = store.run(run.run_id)
        assert set(record.metrics) >= SYS_KEYS
        steps = [point.step for point in record.metrics["sys.memory.rss_bytes"]]
        assert steps == list(range(len(steps)))
        assert all(point.value > 0 for point in record.metrics["sys.memory.rss_bytes"])
        assert record.manifest.metrics["sys.memory.rss_bytes"].count == len(steps)
        # GPU metrics only where NVML finds a GPU; skipped cleanly everywhere else.
        has_gpu_metrics = any(key.startswith("sys.gpu.") for key in record.metrics)
        assert has_gpu_metrics == (gpus() > 0)

    def test_off_by_default(self, store: dn.Store) -> None:
        """Without system_metrics no sampler thread runs and no sys.* metric is logged."""
        with dn.run("quiet") as run:
            assert sampler_threads() == []
            dn.log_metric("m", 1)
        assert [key for key in store.run(run.run_id).metrics if key.startswith("sys.")] == []

    def test_configure_turns_it_on_and_run_turns_it_off(self) -> None:
        """configure(system_metrics=True) samples every run; run(system_metrics=False) not."""
        settings = dn.configure(system_metrics=True)
        assert settings.system_metrics == 5.0
        with dn.run("on"):
            assert len(sampler_threads()) == 1
        with dn.run("off", system_metrics=False):
            assert sampler_threads() == []
        assert dn.configure(system_metrics=0.5).system_metrics == 0.5

    def test_stops_with_the_run(self) -> None:
        """When the run closes, its sampler thread is gone, also when the run failed."""
        with dn.run("ok", system_metrics=0.01):
            assert len(sampler_threads()) == 1
        assert sampler_threads() == []
        with pytest.raises(RuntimeError, match="boom"), dn.run("failing", system_metrics=0.01):
            assert len(sampler_threads()) == 1
            raise RuntimeError("boom")
        assert sampler_threads() == []

    @pytest.mark.anyio
    async def test_stops_with_an_async_run(self) -> None:
        """``async with`` stops the sampler too (joined off the event loop)."""
        async with dn.run("async", system_metrics=0.01):
            assert len(sampler_threads()) == 1
            await anyio.sleep(0)
        assert sampler_threads() == []

    def test_no_sample_after_run_finished(self, memory: dn.MemorySink) -> None:
        """Nothing the sampler logs comes after run_finished."""
        with dn.run("edge", system_metrics=0.001):
            wait_for_samples(memory, 3)
        assert type(memory.events[-1]) is RunFinished
        assert any(type(e) is Metric and e.name.startswith("sys.") for e in memory.events)

    def test_without_psutil(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Asking for system metrics without psutil is an ImportError naming the extra."""
        monkeypatch.setitem(sys.modules, "psutil", None)
        with pytest.raises(ImportError, match=r"strikes\[system\]"):
            dn.run("needs-psutil", system_metrics=1.0)
        with pytest.raises(ImportError, match=r"strikes\[system\]"):
            dn.configure(system_metrics=True)
        with dn.run("fine"):  # without asking, nothing needs psutil
            pass

    @pytest.mark.parametrize(
        ("value", "error"), [(-1, ValueError), (0.0, ValueError), ("1", TypeError)]
    )
    def test_bad_intervals(self, value: object, error: type[Exception]) -> None:
        """A non-positive or non-number interval is refused at the call site."""
        with pytest.raises(error, match="system_metrics"):
            dn.run("bad", system_metrics=value)  # type: ignore[arg-type]

    def test_interval_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """STRIKES_SYSTEM_METRICS is on/off or the seconds between samples."""
        monkeypatch.setenv("STRIKES_SYSTEM_METRICS", "2.5")
        assert dn.configure().system_metrics == 2.5
        monkeypatch.setenv("STRIKES_SYSTEM_METRICS", "on")
        assert dn.configure().system_metrics == 5.0
        monkeypatch.setenv("STRIKES_SYSTEM_METRICS", "-3")
        with pytest.raises(ValueError, match="STRIKES_SYSTEM_METRICS"):
            dn.configure()

    def test_interpreter_exit_stops_the_sampler_of_a_run_left_open(
        self, tmp_path: Path, store_dir: Path
    ) -> None:
        """A run left open at exit is finished with its samples; the process exits."""
        script = tmp_path / "left_open.py"
        script.write_text(
            textwrap.dedent(
                """
                import time
                import strikes as dn
                run = dn.run("left-open", system_metrics=0.01)
                run.__enter__()
                store = dn.open_store()
                dn.push_update()
                while "sys.memory.rss_bytes" not in store.run(run.run_id).metrics:
                    time.sleep(0.01)
                    dn.push_update()
                print(run.run_id)
                """
            )
        )
        result = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "STRIKES_DIR": str(store_dir)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        record = dn.open_store(store_dir).run(result.stdout.strip())
        assert record.status == "finished"
        assert "sys.memory.rss_bytes" in record.metrics
        assert type(record.events[-1]) is RunFinished


WRITER = """
import sys, time
import strikes as dn
dn.configure(heartbeat_interval=0.05)
run = dn.run("victim")
run.__enter__()
dn.log_metric("m", 1)
dn.push_update()
print(run.run_id, flush=True)
time.sleep(3600)
"""


@pytest.mark.usefixtures("outside")
class TestHeartbeat:
    def test_silent_open_run_stays_seen(self, store: dn.Store) -> None:
        """While a run logs nothing, its heartbeat moves last_seen forward."""
        dn.configure(heartbeat_interval=0.05)
        with dn.run("silent") as run:
            dn.push_update()
            first = store.run(run.run_id).last_seen
            assert first is not None
            wait_for(lambda: (store.run(run.run_id).last_seen or first) > first)
            record = store.run(run.run_id)
            assert record.manifest.heartbeat == 0.05
            assert record.status == "running"
            assert not record.crashed
        assert store.run(run.run_id).status == "finished"

    def test_heartbeat_off(self, store: dn.Store) -> None:
        """heartbeat_interval=0 sends none, and the manifest says so."""
        dn.configure(heartbeat_interval=0)
        with dn.run("no-beat") as run:
            dn.push_update()
            assert store.run(run.run_id).manifest.heartbeat == 0.0

    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
    def test_killed_writer_is_crashed_and_a_live_one_is_not(
        self, tmp_path: Path, store_dir: Path
    ) -> None:
        """After SIGKILL and the silence, the run reads as crashed; a live run does not."""
        dn.configure(heartbeat_interval=0.05)
        script = tmp_path / "writer.py"
        script.write_text(WRITER)
        with (
            subprocess.Popen(
                [sys.executable, str(script)],
                env={**os.environ, "STRIKES_DIR": str(store_dir)},
                stdout=subprocess.PIPE,
                text=True,
            ) as writer,
            dn.run("alive") as alive,
        ):
            assert writer.stdout is not None
            victim_id = writer.stdout.readline().strip()
            store = dn.open_store(store_dir, stale_after=1.0)
            assert not store.run(victim_id).crashed  # alive and beating
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
            wait_for(lambda: store.run(victim_id).crashed)
            victim, live = store.run(victim_id), store.run(alive.run_id)
            assert victim.status == "running"  # never finished: derived, not stored
            assert not live.crashed
            assert live.last_seen is not None
            assert victim.last_seen is not None
            assert live.last_seen > victim.last_seen
            assert {r.name: r.crashed for r in store.runs()} == {"victim": True, "alive": False}
            table = store.table("runs")
            assert dict(zip(table["run_id"], table["crashed"], strict=True)) == {
                victim_id: True,
                alive.run_id: False,
            }
        finished = dn.open_store(store_dir, stale_after=1e-9).run(alive.run_id)
        assert finished.status == "finished"
        assert not finished.crashed  # only running runs ever are

    def test_stale_after_defaults_and_checks(
        self, store: dn.Store, store_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """60 s, or 3 heartbeat intervals when longer; the store or the environment overrides."""
        with dn.run("default") as default:
            pass
        dn.configure(heartbeat_interval=100)
        with dn.run("slow-beat") as slow:
            pass
        assert store.run(default.run_id).stale_after == 60.0
        assert store.run(slow.run_id).stale_after == 300.0
        assert dn.open_store(store_dir, stale_after=5).run(slow.run_id).stale_after == 5.0
        monkeypatch.setenv("STRIKES_STALE_AFTER", "7")
        assert dn.open_store(store_dir).run(slow.run_id).stale_after == 7.0
        monkeypatch.setenv("STRIKES_STALE_AFTER", "soon")
        with pytest.raises(ValueError, match="STRIKES_STALE_AFTER"):
            dn.open_store(store_dir)
        with pytest.raises(ValueError, match="stale_after"):
            dn.Store(store_dir, stale_after=0)
        with pytest.raises(TypeError, match="stale_after"):
            dn.Store(store_dir, stale_after="1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="heartbeat_interval"):
            dn.configure(heartbeat_interval=-1)

    def test_runs_table_has_crashed_and_git_columns(self) -> None:
        """The runs table's fixed columns include crashed, git_commit and git_dirty."""
        assert {"crashed", "git_commit", "git_dirty"} <= set(RUN_COLUMNS)


@pytest.fixture
def stuck_run(outside: Path) -> Iterator[dn.Run]:
    """An open run without heartbeats: silent, so it reads as crashed at a tiny stale_after."""
    dn.configure(heartbeat_interval=0)
    run = dn.run("stuck")
    run.__enter__()
    dn.push_update()
    yield run
    run.__exit__(None, None, None)


def run_cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in-process; return the exit code and stdout."""
    out = io.StringIO()
    code = cli.main(list(argv), stdout=out)
    return code, out.getvalue()


def table_rows(text: str) -> dict[str, list[str]]:
    """The cells of a table printed by the CLI (rich borders), by the first cell."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "│" in line:
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            rows[cells[0]] = cells[1:]
    return rows


class TestCli:
    def test_show_prints_provenance(
        self, repo: Path, store: dn.Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`strikes show` has a Provenance section: code, command, python, host, packages, env."""
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
        (repo / "train.py").write_text("print('v2')\n")
        with dn.run("shown"):
            pass
        commit = git(repo, "rev-parse", "HEAD").decode().strip()
        code, text = run_cli("show", "shown")
        assert code == 0
        assert "Provenance" in text
        assert f"commit    {commit} on main, dirty (diff sha256:" in text
        assert "not kept)" in text
        assert f"cwd       {repo}" in text
        assert f"python    {platform.python_implementation()} {platform.python_version()}" in text
        assert f"(pid {os.getpid()})" in text
        packages = store.runs()[0].packages
        assert packages is not None
        assert f"packages  {len(packages)} installed (sha256:" in text
        assert "env       CUDA_VISIBLE_DEVICES=0,1" in text
        assert "running" not in text

    def test_show_json_has_provenance(self, repo: Path, store: dn.Store) -> None:
        """`strikes show --json` carries the provenance record and the package count."""
        with dn.run("shown"):
            pass
        code, text = run_cli("show", "--json", "shown")
        assert code == 0
        data = json.loads(text)
        assert data["provenance"]["git_branch"] == "main"
        assert data["provenance"]["git_dirty"] is False
        assert data["packages"] == len(store.runs()[0].packages or {})
        assert data["crashed"] is False

    def test_show_without_provenance(self, outside: Path) -> None:
        """A run recorded with provenance off shows no Provenance section."""
        with dn.run("bare", provenance=False):
            pass
        code, text = run_cli("show", "bare")
        assert code == 0
        assert "Provenance" not in text

    def test_compare_highlights_what_differs(
        self, repo: Path, store: dn.Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Commit, dirty, changed/added/removed packages and params are marked as different."""
        monkeypatch.setattr(_provenance, "GIT_REUSE_SECONDS", 0.0)  # each run looks anew
        monkeypatch.setattr(_provenance, "freeze_packages", lambda: b"alpha==1.0\nbeta==1.0\n")
        with dn.run("before"):
            dn.log_params(lr=0.1, layers=2)
        (repo / "train.py").write_text("print('v2')\n")
        git(repo, "commit", "-q", "-am", "second")
        (repo / "train.py").write_text("print('v3')\n")
        monkeypatch.setattr(_provenance, "freeze_packages", lambda: b"alpha==2.0\ngamma==0.1\n")
        with dn.run("after"):
            dn.log_params(lr=0.2, layers=2)
        code, text = run_cli("compare", "before", "after")
        assert code == 0
        rows = table_rows(text)
        first, second = (
            record.provenance.git_commit[:12]  # type: ignore[union-attr,index]
            for record in (store.resolve("before"), store.resolve("after"))
        )
        assert rows["git commit"] == [f"{first} *", f"{second} *"]
        assert rows["git branch"] == ["main", "main"]
        assert rows["git dirty"] == ["false *", "true *"]
        assert rows["packages"] == ["2", "2"]
        assert rows["package alpha"] == ["1.0 *", "2.0 *"]  # changed
        assert rows["package beta"] == ["1.0 *", "- *"]  # removed
        assert rows["package gamma"] == ["- *", "0.1 *"]  # added
        assert rows["param lr"] == ["0.1 *", "0.2 *"]
        assert rows["param layers"] == ["2", "2"]

    def test_compare_json_lists_package_differences(
        self, outside: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`compare --json` gives each run's provenance and its versions of differing packages."""
        monkeypatch.setattr(_provenance, "freeze_packages", lambda: b"alpha==1.0\nsame==3\n")
        with dn.run("one"):
            pass
        monkeypatch.setattr(_provenance, "freeze_packages", lambda: b"same==3\n")
        with dn.run("two"):
            pass
        code, text = run_cli("compare", "--json", "one", "two")
        assert code == 0
        one, two = json.loads(text)
        assert one["package_differences"] == {"alpha": "1.0"}
        assert two["package_differences"] == {"alpha": None}
        assert one["provenance"]["cwd"] == str(outside)

    def test_same_environment_has_no_package_rows(self, outside: Path) -> None:
        """Runs sharing one package list show no package rows."""
        with dn.run("a"):
            pass
        with dn.run("b"):
            pass
        code, text = run_cli("compare", "a", "b")
        assert code == 0
        assert "package " not in text
        assert "packages" in text

    def test_crashed_run_in_runs_and_show(self, stuck_run: dn.Run) -> None:
        """A silent running run is listed as crashed, and --status crashed selects it."""
        time.sleep(0.01)  # silent for longer than the stale_after below
        code, text = run_cli("runs", "--stale-after", "0.001")
        assert code == 0
        assert "crashed" in text
        code, text = run_cli("runs", "--json", "--stale-after", "0.001", "--status", "crashed")
        (only,) = json.loads(text)
        assert (only["name"], only["status"], only["crashed"]) == ("stuck", "running", True)
        code, text = run_cli("show", "stuck", "--stale-after", "0.001")
        assert "running, but crashed: its writer" in text
        code, text = run_cli("runs", "--json", "--status", "crashed")  # default: 60 s
        assert json.loads(text) == []
        code, text = run_cli("show", "stuck")
        assert "running (last seen" in text
