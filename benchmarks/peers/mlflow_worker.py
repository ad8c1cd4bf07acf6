# ruff: noqa: PLC0415 - the library is imported in setup(), after its environment is set
"""MLflow, with a local tracking store (no server).

The store is the file store (``file://DIR/mlruns``, allowed with MLFLOW_ALLOW_FILE_STORE=true:
MLflow 3 puts it in maintenance mode) because it is the faster of the two local stores
here; ``BENCH_MLFLOW_STORE=sqlite`` switches to ``sqlite:///DIR/mlflow.db``, MLflow's
recommended backend, which measured about 5x slower per ``log_metric``. Metrics are logged
synchronously (MLflow's default; its async logging measured slower end to end).
Traced tasks use MLflow Tracing (``@mlflow.trace``), nested under one parent span so a
run is one trace; durable once ``flush_trace_async_logging()`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import warnings
from importlib.metadata import version
from typing import ClassVar

import _common

STORE = os.environ.get("BENCH_MLFLOW_STORE", "file")


class MLflowPeer:
    SUPPORT: ClassVar[dict[str, str]] = {"concurrent": "client API only"}
    NOTES: ClassVar[dict[str, str]] = {
        "metrics": f"mlflow.log_metric(key, value, step) in mlflow.start_run(), {STORE} store, "
        "synchronous: each call writes to the store",
        "task": "@mlflow.trace sync function, called under one mlflow.start_span() parent; "
        "durable after flush_trace_async_logging()",
        "concurrent": "the fluent API cannot: its active run is per thread, so a second "
        "start_run() in the same thread fails; measured with MlflowClient and explicit run ids",
        "eval": "@mlflow.trace async sample + @mlflow.trace scorer (score as span attribute), "
        "semaphore(100) + asyncio.gather, under one parent span",
    }

    def version(self):
        return version("mlflow")

    def setup(self, directory):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        os.environ.setdefault("MLFLOW_TRACKING_URI", "")
        warnings.simplefilter("ignore")
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        import mlflow

        self.mlflow = mlflow
        self.directory = directory
        if STORE == "sqlite":
            uri = f"sqlite:///{directory}/mlflow.db"
        else:
            uri = f"file://{directory}/mlruns"
        mlflow.set_tracking_uri(uri)
        self.experiment_id = mlflow.set_experiment("bench").experiment_id
        self.client = mlflow.MlflowClient()
        self.run_ids = []

    def metrics(self, n):
        mlflow = self.mlflow
        log_metric = mlflow.log_metric
        with mlflow.start_run(run_name="metrics") as run:
            t0 = time.perf_counter()
            for i in range(n):
                log_metric("loss", 0.5, step=i)
            t_logged = time.perf_counter()
        self.run_ids.append(run.info.run_id)
        return t0, t_logged, time.perf_counter()

    def check_metrics(self, n):
        counts = [len(self.client.get_metric_history(rid, "loss")) for rid in self.run_ids]
        ok = counts and all(count == n for count in counts)
        return f"{'ok' if ok else 'MISMATCH'}: metric points per run {sorted(set(counts))}"

    def task(self, n):
        mlflow = self.mlflow

        @mlflow.trace
        def f(x):
            return x

        with mlflow.start_run(run_name="task"), mlflow.start_span("task"):
            t0 = time.perf_counter()
            for i in range(n):
                f(i)
            t_called = time.perf_counter()
        mlflow.flush_trace_async_logging()
        return t0, t_called, time.perf_counter()

    async def concurrent(self, runs, each, every):
        client, experiment_id = self.client, self.experiment_id
        # Show what the fluent API does with two runs open at once in one thread.
        try:
            with self.mlflow.start_run(run_name="a"), self.mlflow.start_run(run_name="b"):
                pass
            fluent = "fluent API: nested start_run accepted"
        except Exception as exc:
            fluent = f"the fluent API refuses a second open run: {type(exc).__name__}: " + (
                str(exc).split(". ")[0].split(" with UUID ")[0] + " ... is already active"
            )

        async def one(k):
            run_id = client.create_run(experiment_id, run_name=f"concurrent-{k}").info.run_id
            for i in range(each):
                client.log_metric(run_id, "loss", 0.5, step=i)
                if i % every == every - 1:
                    await asyncio.sleep(0)
            client.set_terminated(run_id)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(runs)))
        return t0, time.perf_counter(), fluent

    async def eval(self, n, concurrency):
        mlflow = self.mlflow
        sample, score = _common.sample, _common.score

        @mlflow.trace(name="score")
        def scorer(output):
            value = score(output)
            mlflow.get_current_active_span().set_attribute("score", value)
            return value

        @mlflow.trace(name="sample")
        async def one(x):
            out = await sample(x)
            scorer(out)
            return out

        with mlflow.start_run(run_name="eval"), mlflow.start_span("eval"):
            t0 = time.perf_counter()
            await _common.gather_limited(one, range(n), concurrency)
        mlflow.flush_trace_async_logging()
        return t0, time.perf_counter()


if __name__ == "__main__":
    _common.main(MLflowPeer, name="mlflow")
