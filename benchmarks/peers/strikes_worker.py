# ruff: noqa: PLC0415 - the library is imported in setup(), after its environment is set
"""strikes, through its public API, writing to its default local store.

Durable: a run's data is in its store directory once ``with dn.run()`` exits.
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import _common

import strikes as dn


def _task_decorator():
    task = getattr(dn, "task", None)
    if task is None:  # not exported yet: use the implementation, and say so
        from strikes._task import task

        _common.warn("API gap: strikes.task is not exported; used strikes._task.task")
    return task


class StrikesPeer:
    NOTES: ClassVar[dict[str, str]] = {
        "metrics": "dn.log_metric in `with dn.run()`; durable at run exit",
        "task": "@dn.task sync function called in a run (inputs and output logged)",
        "concurrent": "`async with dn.run()` per coroutine; contextvars keep runs apart",
        "eval": "@dn.task(scorers=[score]) async; `await task.map(items, concurrency=100)`",
    }

    def version(self):
        return dn.__version__

    def setup(self, directory):
        self.directory = directory
        dn.configure(dir=directory, project="bench")

    def metrics(self, n):
        log_metric = dn.log_metric
        with dn.run("metrics"):
            t0 = time.perf_counter()
            for i in range(n):
                log_metric("loss", 0.5, step=i)
            t_logged = time.perf_counter()
        return t0, t_logged, time.perf_counter()

    def check_metrics(self, n):
        store = dn.open_store(self.directory)
        counts = []
        for record in store.runs(project="bench"):
            points = record.metrics.get("loss", [])
            counts.append(len(points))
        ok = all(count == n for count in counts)
        return (
            f"{'ok' if ok else 'MISMATCH'}: {len(counts)} runs read back, "
            f"metrics per run {sorted(set(counts))}"
        )

    def task(self, n, **options):
        task = _task_decorator()

        @task(**options)
        def f(x):
            return x

        with dn.run("task"):
            t0 = time.perf_counter()
            for i in range(n):
                f(i)
            t_called = time.perf_counter()
        return t0, t_called, time.perf_counter()

    def task_bare(self, n):
        return self.task(n, log_inputs=False, log_output=False)

    async def concurrent(self, runs, each, every):
        self.repeat = getattr(self, "repeat", 0) + 1
        prefix = f"concurrent-{self.repeat}-"

        async def one(k):
            async with dn.run(f"{prefix}{k}"):
                for i in range(each):
                    dn.log_metric("loss", 0.5, step=i)
                    if i % every == every - 1:
                        await asyncio.sleep(0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(runs)))
        t1 = time.perf_counter()
        counts = [
            len(record.metrics.get("loss", []))
            for record in dn.open_store(self.directory).runs(project="bench")
            if record.name.startswith(prefix)
        ]
        return t0, t1, f"runs read back {len(counts)}, metrics per run {sorted(set(counts))}"

    async def eval(self, n, concurrency):
        task = _task_decorator()
        scored = task(scorers=[_common.score])(_common.sample)
        async with dn.run("eval"):
            t0 = time.perf_counter()
            await scored.map(list(range(n)), concurrency=concurrency)
        return t0, time.perf_counter()


if __name__ == "__main__":
    _common.main(StrikesPeer, name="strikes")
