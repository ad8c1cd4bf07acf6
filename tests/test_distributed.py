"""continue_run() across processes: process pools (fork, spawn), multiprocessing.Pool, Dask."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import strikes as dn

START_METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


def score_shard(context: dn.RunContext, shard: int) -> int:
    """A worker: a task per shard with metrics, params, inputs and outputs, under the context."""
    with dn.continue_run(context):
        with dn.task_span(f"shard-{shard}", label="shard") as span:
            dn.log_input("shard", shard)
            dn.log_param("pid", os.getpid())
            for step in range(5):
                dn.log_metric("loss", 1.0 / (step + 1 + shard), step=step)
            dn.log_output("result", {"shard": shard, "big": "x" * 20_000})
            assert span.recorded
        dn.log_metric("shards_done", 1, aggregation="count")
    return shard * 10


def check_sharded_run(store: dn.Store, run_id: str, shards: int, parent: str) -> None:
    """The run reads back with every shard's task, values and metrics under ``parent``."""
    record = store.run(run_id)
    assert record.status == "finished"
    fan_out = record.task(parent)
    by_name = {task.name: task for task in fan_out.tasks}
    assert sorted(by_name) == sorted(f"shard-{i}" for i in range(shards))
    for index in range(shards):
        task = by_name[f"shard-{index}"]
        assert task.finished
        assert task.inputs == {"shard": index}
        assert task.outputs["result"] == {"shard": index, "big": "x" * 20_000}
        assert [p.step for p in task.metrics["loss"]] == [0, 1, 2, 3, 4]
        assert task.metrics["loss"][0].value == 1.0 / (1 + index)
        assert task.params["pid"] != os.getpid()
    assert len(fan_out.metrics["shards_done"]) == shards
    assert len(record.metrics["shard.loss"]) == 5 * shards
    assert record.read_report.corrupt_frames == 0


class TestProcessPool:
    @pytest.mark.parametrize("method", START_METHODS)
    # Python 3.12+ warns that fork() in a threaded process may deadlock: strikes' runtime
    # thread is made for that (it re-starts in the child), which this test checks.
    @pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
    def test_process_pool_executor(self, store: dn.Store, method: str) -> None:
        """Workers of a ProcessPoolExecutor log into the parent's task; all of it reads back."""
        with dn.run("pool") as run, dn.task_span("fan-out"):
            context = dn.get_run_context()
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool:
                results = list(pool.map(score_shard, [context] * 4, range(4)))
            dn.log_metric("total", sum(results))
        assert results == [0, 10, 20, 30]
        check_sharded_run(store, run.run_id, 4, "fan-out")
        assert store.run(run.run_id).task("fan-out").metrics["total"][0].value == 60

    def test_multiprocessing_pool(self, store: dn.Store) -> None:
        """multiprocessing.Pool workers (the default start method) do the same."""
        with dn.run("mp") as run, dn.task_span("fan-out"):
            context = dn.get_run_context()
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                results = pool.starmap(score_shard, [(context, i) for i in range(3)])
        assert results == [0, 10, 20]
        check_sharded_run(store, run.run_id, 3, "fan-out")

    def test_one_segment_per_worker_process(self, store: dn.Store) -> None:
        """A worker that runs many continuations writes one segment file, not one per call."""
        with dn.run("segments") as run, dn.task_span("fan-out"):
            context = dn.get_run_context()
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(score_shard, [context] * 3, range(3)))
        segments = list((store.path / "runs" / run.run_id / "segments").glob("*.seg"))
        assert len(segments) == 2  # the owner's and the one worker's
        check_sharded_run(store, run.run_id, 3, "fan-out")


    def test_workers_params_and_tags_are_the_runs(self, store: dn.Store) -> None:
        """Params and tags a worker sets on the run read back first thing, as local ones do."""
        with dn.run("run-level") as run:
            context = dn.get_run_context()
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                pool.submit(tag_and_param, context).result()
        record = store.run(run.run_id)
        assert record.params == {"worker_param": 7}
        assert record.tags == ["from-worker"]


def tag_and_param(context: dn.RunContext) -> None:
    with dn.continue_run(context):
        dn.log_param("worker_param", 7)
        dn.tag("from-worker")


class TestDask:
    def test_local_cluster(self, store: dn.Store) -> None:
        """Tasks on a Dask LocalCluster (worker processes) log into the run like local code."""
        distributed = pytest.importorskip("distributed")
        with (
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=50,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            with dn.run("dask") as run, dn.task_span("fan-out"):
                context = dn.get_run_context()
                futures = client.map(score_shard, [context] * 4, range(4), pure=False)
                results = client.gather(futures)
        assert results == [0, 10, 20, 30]
        check_sharded_run(store, run.run_id, 4, "fan-out")


# -- the examples of seeds/runs.md, "Distributed Execution" ------------------------------


def process_batch() -> dict[str, Any]:
    return {"rows": 128, "ok": True}


def worker_task(run_context: dn.RunContext) -> None:
    # Continue the same run in distributed environment
    with dn.continue_run(run_context):
        # All logging is associated with the original run
        dn.log_metric("worker_progress", 0.8)
        dn.log_output("worker_result", process_batch())


def train_model(lr: float, batch_size: int) -> dict[str, float]:
    return {"lr": lr, "batch_size": batch_size}


def evaluate_model(model: dict[str, float]) -> float:
    return round(1.0 - model["lr"] - model["batch_size"] / 1000, 6)


def worker_experiment(run_context: dn.RunContext, hyperparams: dict[str, Any]) -> float:
    """Worker function that continues a run"""
    with dn.continue_run(run_context):
        # Train model with these hyperparams
        model = train_model(**hyperparams)
        accuracy = evaluate_model(model)

        dn.log_params(**hyperparams)
        dn.log_metric("accuracy", accuracy)
        return accuracy


class TestSeedExamples:
    def test_distributed_training(self, store: dn.Store) -> None:
        """The seeds' distributed-training example: workers' metrics and outputs join the run."""
        spawn = multiprocessing.get_context("spawn")
        # On the main process/host
        with dn.run("distributed-training") as run:
            dn.log_params(model="transformer", dataset="large-corpus")

            # Capture the run context for transfer
            context = dn.get_run_context()

            # Send context to worker processes/hosts (here: two spawned processes)
            workers = [spawn.Process(target=worker_task, args=(context,)) for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            assert [worker.exitcode for worker in workers] == [0, 0]
        record = store.run(run.run_id)
        assert record.params == {"model": "transformer", "dataset": "large-corpus"}
        assert [p.value for p in record.metrics["worker_progress"]] == [0.8, 0.8]
        assert record.outputs == {"worker_result": {"rows": 128, "ok": True}}
        assert record.status == "finished"

    def test_hyperparameter_search(self, store: dn.Store) -> None:
        """The seeds' hyperparameter search with a ProcessPoolExecutor, run unchanged."""

        async def distributed_search() -> str:
            with dn.run("hyperparameter-search") as run:
                context = dn.get_run_context()

                # Define search space
                param_combinations = [
                    {"lr": 0.1, "batch_size": 32},
                    {"lr": 0.01, "batch_size": 64},
                    {"lr": 0.001, "batch_size": 128},
                ]

                # Run experiments in parallel across processes
                with ProcessPoolExecutor(
                    mp_context=multiprocessing.get_context("spawn"), max_workers=2
                ) as executor:
                    futures = [
                        executor.submit(worker_experiment, context, params)
                        for params in param_combinations
                    ]

                    results = [future.result() for future in futures]

                # All worker results are automatically part of the main run
                dn.log_metric("best_accuracy", max(results))
            return run.run_id

        run_id = asyncio.run(distributed_search())
        record = store.run(run_id)
        accuracies = sorted(p.value for p in record.metrics["accuracy"])
        assert accuracies == sorted([0.868, 0.926, 0.871])
        assert [p.value for p in record.metrics["best_accuracy"]] == [0.926]
        # workers logged the same param names: each is on the run, the last one kept
        assert set(record.params) == {"lr", "batch_size"}
        assert record.status == "finished"
