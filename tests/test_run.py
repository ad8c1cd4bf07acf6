"""Runs: the examples of the seeds' runs page, sync and async, read back from the store."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import anyio
import pytest

import strikes as dn


def _only_run(store: dn.Store) -> dn.RunRecord:
    runs = store.runs()
    assert len(runs) == 1
    return runs[0]


class TestCreatingRuns:
    def test_context_manager_records_a_finished_run(self, store: dn.Store) -> None:
        """`with dn.run(name)` writes a finished run under that name to the local store."""
        dn.configure()
        with dn.run("my-experiment") as run:
            pass
        record = store.run(run.run_id)
        assert record.name == "my-experiment"
        assert record.status == "finished"
        assert record.project == "Default"
        assert record.started_at is not None
        assert record.ended_at is not None
        assert record.ended_at >= record.started_at

    def test_unnamed_run_gets_adjective_noun_number(self, store: dn.Store) -> None:
        """A run without a name is named like `clever-rabbit-492`."""
        with dn.run() as run:
            pass
        assert re.fullmatch(r"[a-z]+-[a-z]+-\d{3}", run.name)
        assert _only_run(store).name == run.name

    def test_run_ids_are_32_hex_and_distinct(self) -> None:
        """Each run has its own 32-hex-digit id."""
        ids = set()
        for _ in range(20):
            with dn.run() as run:
                ids.add(run.run_id)
        assert len(ids) == 20
        assert all(re.fullmatch(r"[0-9a-f]{32}", run_id) for run_id in ids)

    def test_tags_given_and_added(self, store: dn.Store) -> None:
        """Tags from run(tags=...) and from dn.tag() during the run are all stored, once each."""
        use_advanced_config = True
        with dn.run("my-experiment", tags=["production", "model-v2"]):
            dn.tag("gpu-training", "checkpoint-enabled")
            if use_advanced_config:
                dn.tag("advanced-config")
            dn.tag("production")
        record = _only_run(store)
        assert record.tags == [
            "production",
            "model-v2",
            "gpu-training",
            "checkpoint-enabled",
            "advanced-config",
        ]

    def test_project_per_run_and_from_configure(self, store: dn.Store) -> None:
        """The project comes from run(project=...), else configure(project=...), else Default."""
        with dn.run("a", project="model-training"):
            pass
        dn.configure(project="configured")
        with dn.run("b"):
            pass
        projects = {record.name: record.project for record in store.runs()}
        assert projects == {"a": "model-training", "b": "configured"}

    def test_attributes_are_stored(self, store: dn.Store) -> None:
        """Keyword arguments of run() are stored as the run's attributes."""
        with dn.run("my-experiment", environment="staging", version="1.2.3"):
            pass
        assert _only_run(store).attributes == {"environment": "staging", "version": "1.2.3"}

    def test_manual_enter_and_exit(self, store: dn.Store) -> None:
        """__enter__/__exit__ can be called by hand."""
        run = dn.run("manual")
        run.__enter__()
        dn.log_metric("x", 1)
        run.__exit__(None, None, None)
        assert _only_run(store).metrics["x"][0].value == 1.0

    def test_a_run_cannot_be_opened_twice(self) -> None:
        """Re-entering a run that already ran is refused with a clear error."""
        run = dn.run("once")
        with run:
            pass
        with pytest.raises(RuntimeError, match="already started"), run:
            pass

    def test_nested_run_in_same_context_is_refused(self) -> None:
        """Opening a run inside an open run of the same context raises RuntimeError."""
        with dn.run("outer"), pytest.raises(RuntimeError, match="cannot open inside run 'outer'"):
            with dn.run("inner"):
                pass

    def test_get_current_run(self) -> None:
        """get_current_run() is the open run, and None outside."""
        assert dn.get_current_run() is None
        with dn.run("r") as run:
            assert dn.get_current_run() is run
        assert dn.get_current_run() is None


class TestIndependentRuns:
    def test_sequential_runs_are_separate(self, store: dn.Store) -> None:
        """The learning-rate loop of the seeds gives three runs, each with its own data."""

        def train_model(lr: float) -> dict[str, float]:
            return {"accuracy": 1 - lr}

        for lr in [0.1, 0.01, 0.001]:
            with dn.run(f"training-lr-{lr}"):
                dn.log_param("learning_rate", lr)
                result = train_model(lr=lr)
                dn.log_metric("accuracy", result["accuracy"])
        by_name = {record.name: record for record in store.runs()}
        assert set(by_name) == {"training-lr-0.1", "training-lr-0.01", "training-lr-0.001"}
        for lr in [0.1, 0.01, 0.001]:
            record = by_name[f"training-lr-{lr}"]
            assert record.params == {"learning_rate": lr}
            assert [p.value for p in record.metrics["accuracy"]] == [1 - lr]

    def test_runs_list_newest_first(self, store: dn.Store) -> None:
        """Store.runs() lists the newest run first."""
        for name in ("first", "second", "third"):
            with dn.run(name):
                pass
        assert [record.name for record in store.runs()] == ["third", "second", "first"]


class TestParallelRuns:
    @pytest.mark.anyio
    @pytest.mark.parametrize("anyio_backend", ["asyncio"])
    async def test_seed_parallel_runs_with_plain_with(self, store: dn.Store) -> None:
        """The seeds' asyncio.gather example: sync `with` in gathered coroutines, no cross-talk."""

        async def async_train_model(**config: float) -> dict[str, float]:
            await asyncio.sleep(0.01)
            return {"loss": config["learning_rate"] * 2, "acc": config["batch_size"] / 1000}

        async def run_experiment(config: dict[str, float]) -> None:
            with dn.run(f"experiment-{config['id']}"):
                dn.log_params(**config)
                result = await async_train_model(**config)
                dn.log_metrics(**result)

        configs = [
            {"id": 1, "learning_rate": 0.1, "batch_size": 32},
            {"id": 2, "learning_rate": 0.01, "batch_size": 64},
            {"id": 3, "learning_rate": 0.001, "batch_size": 128},
        ]
        await asyncio.gather(*[run_experiment(config) for config in configs])
        by_name = {record.name: record for record in store.runs()}
        for config in configs:
            record = by_name[f"experiment-{config['id']}"]
            assert record.params == config
            assert record.metrics["loss"][0].value == config["learning_rate"] * 2
            assert record.metrics["acc"][0].value == config["batch_size"] / 1000

    @pytest.mark.anyio
    async def test_hundred_concurrent_runs_do_not_cross_talk(self, store: dn.Store) -> None:
        """100 runs in one task group each see only their own metrics, params and tasks."""

        async def experiment(index: int) -> None:
            async with dn.run(f"run-{index:03d}"):
                dn.log_param("index", index)
                for step in range(50):
                    dn.log_metric("value", index * 1000 + step, step=step)
                    if step % 10 == 0:
                        await anyio.sleep(0)
                with dn.task_span(f"task-{index}"):
                    dn.log_metric("inner", index)

        async with anyio.create_task_group() as group:
            for index in range(100):
                group.start_soon(experiment, index)
        records = store.runs()
        assert len(records) == 100
        for record in records:
            index = int(record.name.removeprefix("run-"))
            assert record.params == {"index": index}
            assert [p.value for p in record.metrics["value"]] == [
                index * 1000 + s for s in range(50)
            ]
            assert [p.step for p in record.metrics["value"]] == list(range(50))
            assert [task.name for task in record.tasks] == [f"task-{index}"]
            assert record.metrics[f"task-{index}.inner"][0].value == index

    @pytest.mark.anyio
    async def test_async_with_does_not_block_the_loop(self, store: dn.Store) -> None:
        """While one `async with` run flushes on exit, other tasks on the loop keep running."""
        ticks = 0

        async def ticker(stop: anyio.Event) -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await anyio.sleep(0)

        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(ticker, stop)
            async with dn.run("async-run"):
                for step in range(2000):
                    dn.log_metric("m", step, step=step)
            stop.set()
        assert ticks > 0
        assert len(_only_run(store).metrics["m"]) == 2000

    def test_runs_in_threads_are_separate(self, store: dn.Store) -> None:
        """Runs opened on several threads at once each keep their own data."""

        def work(index: int) -> None:
            with dn.run(f"thread-{index}"):
                for step in range(500):
                    dn.log_metric("m", index, step=step)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for record in store.runs():
            index = int(record.name.removeprefix("thread-"))
            assert {p.value for p in record.metrics["m"]} == {index}
            assert len(record.metrics["m"]) == 500


class TestErrors:
    def test_exception_marks_run_failed_and_reraises(self, store: dn.Store) -> None:
        """An exception inside a run fails it, records error and traceback, and propagates."""
        with pytest.raises(ZeroDivisionError), dn.run("risky"):
            dn.log_metric("before", 1)
            _ = 1 / 0
        record = _only_run(store)
        assert record.status == "failed"
        assert record.error == "ZeroDivisionError: division by zero"
        assert record.traceback is not None
        assert "1 / 0" in record.traceback
        assert record.metrics["before"][0].value == 1.0

    @pytest.mark.anyio
    async def test_async_exception_marks_run_failed(self, store: dn.Store) -> None:
        """`async with` runs fail the same way."""
        with pytest.raises(ValueError, match="bad"):
            async with dn.run("risky-async"):
                raise ValueError("bad")
        assert _only_run(store).status == "failed"

    def test_handled_errors_keep_the_run_going(self, store: dn.Store) -> None:
        """The seeds' try/except inside a run: the run finishes and logs the error metric."""

        def potentially_failing_function() -> float:
            raise RuntimeError("flaky")

        with dn.run("risky-experiment"):
            try:
                potentially_failing_function()
                dn.log_metric("success", 1.0)
            except RuntimeError:
                dn.log_metric("error", 1.0)
        record = _only_run(store)
        assert record.status == "finished"
        assert "success" not in record.metrics
        assert record.metrics["error"][0].value == 1.0


class TestLiveMonitoring:
    def test_training_loop_metrics_with_steps(self, store: dn.Store) -> None:
        """The live-monitoring loop: every loss and accuracy point is stored with its step."""
        with dn.run("training-experiment"):
            for epoch in range(100):
                dn.log_metric("loss", 1 / (epoch + 1), step=epoch)
                dn.log_metric("accuracy", epoch / 100, step=epoch)
        record = _only_run(store)
        assert [p.step for p in record.metrics["loss"]] == list(range(100))
        assert [p.value for p in record.metrics["accuracy"]] == [e / 100 for e in range(100)]

    def test_push_update_makes_data_visible_while_running(self, store: dn.Store) -> None:
        """After push_update() returns, a reader sees everything logged so far, run still open."""
        with dn.run("critical-experiment") as run:
            for checkpoint in range(3):
                dn.log_metric("checkpoint_score", checkpoint)
                dn.push_update()
                record = store.run(run.run_id)
                assert record.status == "running"
                assert [p.value for p in record.metrics["checkpoint_score"]] == list(
                    map(float, range(checkpoint + 1))
                )

    @pytest.mark.anyio
    async def test_push_update_async(self, store: dn.Store) -> None:
        """`await dn.push_update_async()` flushes without blocking the caller's loop."""
        async with dn.run("async-push") as run:
            dn.log_metric("m", 1)
            await dn.push_update_async()
            assert store.run(run.run_id).metrics["m"][0].value == 1.0


class TestTaskHierarchy:
    def test_run_tasks_and_all_tasks(self) -> None:
        """run.tasks holds top-level tasks; run.all_tasks every task, recursively."""
        with dn.run("data-processing") as run:
            with dn.task_span("clean data"), dn.task_span("dedupe"):
                pass
            with dn.task_span("analyze"):
                dn.log_metric("rows", 3)
        assert [task.name for task in run.tasks] == ["clean data", "analyze"]
        assert [task.name for task in run.all_tasks] == ["clean data", "dedupe", "analyze"]
        assert run.tasks[0].run is run
        assert len(run.tasks[0].tasks) == 1
        successful = [t for t in run.all_tasks if not t.failed]
        assert len(successful) == 3

    def test_failed_task_span_is_recorded(self, store: dn.Store) -> None:
        """A task span that raises is failed, with its error, in memory and in the store."""
        with dn.run("r") as run:
            with pytest.raises(KeyError), dn.task_span("lookup"):
                raise KeyError("missing")
        assert run.tasks[0].failed
        record = _only_run(store)
        assert record.tasks[0].failed
        assert record.tasks[0].error == "KeyError: 'missing'"


class TestStats:
    def test_stats_count_events(self) -> None:
        """run.stats counts the events of the run and reports no drops under block."""
        with dn.run("counted") as run:
            for i in range(10):
                dn.log_metric("m", i)
        # run started + provenance + 10 metrics + run finished
        assert run.stats["events"] == 13
        assert run.stats["dropped"] == 0
        assert run.stats["queued"] == 0


def test_store_written_here_is_readable_by_another_process(store_dir: Path) -> None:
    """A separate Python process reads back what this one wrote."""
    import subprocess
    import sys

    with dn.run("shared", tags=["t"]) as run:
        dn.log_metric("m", 2.5, step=7)
    code = (
        "import strikes as dn, sys; r = dn.open_store(sys.argv[1]).run(sys.argv[2]);"
        "print(r.name, r.status, r.metrics['m'][0].value, r.metrics['m'][0].step, r.tags)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store_dir), run.run_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "shared finished 2.5 7 ['t']"
