# ruff: noqa: PLC0415 - the library is imported in setup(), after its environment is set
"""The dreadnode SDK, offline: no server and no API key, spans written to its local store.

``dn.configure(cache=DIR, trace_backend="local", console=False)`` with no credentials sets
up Logfire (``send_to_logfire=False``) with a BatchSpanProcessor into the SDK's
``LocalStorageSpanExporter``, which appends every finished span as a JSON line to
``DIR/projects/<project>/<run id>/spans.jsonl``. Nothing leaves the machine. Metrics are
kept in memory on the span and written as a span attribute when the run ends.
Durable: the run has exited and the span processor's ``force_flush()`` has returned.
HOME points into the benchmark directory so no saved login profile is picked up.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from importlib.metadata import version
from typing import ClassVar

import _common


class DreadnodePeer:
    SUPPORT: ClassVar[dict[str, str]] = {"concurrent": "yes (`with` only)"}
    NOTES: ClassVar[dict[str, str]] = {
        "metrics": "dn.log_metric in `with dn.run()`; metrics kept in memory, written as one "
        "span attribute at run end; durable after exit + force_flush",
        "task": "@dn.task on a sync function: dreadnode 2.x tasks are always coroutines, so "
        "each call is `await f(i)` in one event loop (inputs and output logged)",
        "concurrent": "`with dn.run()` per coroutine (no `async with`); "
        "the current run is a contextvar",
        "eval": "@dn.task(scorers=[score]) async; `await task.map(items, concurrency=100)`",
    }

    def version(self):
        return version("dreadnode")

    def setup(self, directory):
        os.environ["HOME"] = str(directory / "home")
        (directory / "home").mkdir(parents=True, exist_ok=True)
        for key in list(os.environ):
            if key.startswith("DREADNODE_"):
                del os.environ[key]
        import dreadnode as dn

        self.dn = dn
        self.directory = directory
        dn.configure(cache=directory / "cache", trace_backend="local", console=False)
        self.instance = dn.get_default_instance()

    def _flush(self):
        self.instance._logfire.force_flush()

    def _spans(self):
        for path in (self.directory / "cache").rglob("*.jsonl"):
            with path.open() as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)

    def metrics(self, n):
        dn = self.dn
        log_metric = dn.log_metric
        with dn.run("metrics"):
            t0 = time.perf_counter()
            for i in range(n):
                log_metric("loss", 0.5, step=i)
            t_logged = time.perf_counter()
        self._flush()
        return t0, t_logged, time.perf_counter()

    def check_metrics(self, n):
        counts = []
        for span in self._spans():
            if span["name"] == "metrics":
                metrics = json.loads(span["attributes"].get("dreadnode.metrics", "{}"))
                counts.append(len(metrics.get("loss", {}).get("values", [])))
        ok = counts and all(count == n for count in counts)
        return f"{'ok' if ok else 'MISMATCH'}: metric points per run {sorted(set(counts))}"

    def task(self, n, **options):
        dn = self.dn

        @dn.task(**options)
        def f(x):
            return x

        async def calls():
            t0 = time.perf_counter()
            for i in range(n):
                await f(i)
            return t0, time.perf_counter()

        with dn.run("task"):
            t0, t_called = asyncio.run(calls())
        self._flush()
        t_durable = time.perf_counter()
        self._count_lost("f", n)
        return t0, t_called, t_durable

    def _count_lost(self, name, n):
        """Spans dropped by the BatchSpanProcessor (its queue holds 2048; full means dropped)."""
        written = sum(1 for span in self._spans() if span["name"] == name)
        seen = self.__dict__.setdefault("written", {})
        lost = n - (written - seen.get(name, 0))
        seen[name] = written
        self.last_check = f"{name} spans lost: {lost} of {n}"
        self.last_lost = max(self.last_lost or 0.0, lost / n)
        if lost:
            _common.warn(f"the span processor dropped {name!r} spans ('Queue full, dropping Span')")

    def task_bare(self, n):
        return self.task(n, log_inputs=False, log_output=False)

    async def concurrent(self, runs, each, every):
        dn = self.dn

        async def one(k):
            with dn.run(f"concurrent-{k}"):
                for i in range(each):
                    dn.log_metric("loss", 0.5, step=i)
                    if i % every == every - 1:
                        await asyncio.sleep(0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(runs)))
        self._flush()
        t1 = time.perf_counter()
        counts = []
        for span in self._spans():
            if span["name"].startswith("concurrent-"):
                metrics = json.loads(span["attributes"].get("dreadnode.metrics", "{}"))
                counts.append(len(metrics.get("loss", {}).get("values", [])))
        return t0, t1, f"runs written {len(counts)}, metrics per run {sorted(set(counts))}"

    async def eval(self, n, concurrency):
        dn = self.dn
        scored = dn.task(scorers=[_common.score])(_common.sample)
        with dn.run("eval"):
            t0 = time.perf_counter()
            await scored.map(list(range(n)), concurrency=concurrency)
        self._flush()
        t1 = time.perf_counter()
        self._count_lost("sample", n)
        return t0, t1


if __name__ == "__main__":
    _common.main(DreadnodePeer, name="dreadnode")
