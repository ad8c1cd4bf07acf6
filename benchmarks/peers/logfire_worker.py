# ruff: noqa: PLC0415 - the library is imported in setup(), after its environment is set
"""Pydantic Logfire with nothing sent: ``send_to_logfire=False``, console off.

Logfire keeps no local copy of its own, so its spans go, through
``additional_span_processors``, to the same BatchSpanProcessor + OTLP file exporter as the
OpenTelemetry worker. A metric point is a log record (``logfire.info``, a zero-length span):
Logfire's metrics API (``metric_gauge``...) aggregates and keeps no per-step points.
Durable: the run span has ended and ``logfire.force_flush()`` has returned.
"""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import version
from typing import ClassVar

import _common


class LogfirePeer:
    NOTES: ClassVar[dict[str, str]] = {
        "metrics": "logfire.info('loss', value=v, step=i) inside `with logfire.span('run')`; "
        "durable after force_flush",
        "task": "@logfire.instrument('f') sync function (arguments recorded, as its default)",
        "concurrent": "`with logfire.span()` per coroutine; context is contextvars-based",
        "eval": "@logfire.instrument async sample; scorer in a logfire.span with the score as "
        "attribute; semaphore(100) + asyncio.gather",
    }

    def version(self):
        return version("logfire")

    def setup(self, directory):
        os.environ["HOME"] = str(directory)
        for key in list(os.environ):
            if key.startswith("LOGFIRE_"):
                del os.environ[key]
        import logfire
        from _otlpfile import OTLPFileSpanExporter, spans_in
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.logfire = logfire
        self.spans_in = spans_in
        self.path = directory / "spans.otlp"
        self.exporter = OTLPFileSpanExporter(self.path)
        logfire.configure(
            send_to_logfire=False,
            console=False,
            metrics=False,
            data_dir=directory / "logfire",
            additional_span_processors=[BatchSpanProcessor(self.exporter)],
            inspect_arguments=False,
        )
        self.expected = 0
        self.written = 0

    def _flush(self, expected):
        self.logfire.force_flush()
        self.expected += expected
        lost = self.expected - self.exporter.spans
        new = lost - getattr(self, "_lost", 0)
        self.last_check = f"spans lost: {new} of {expected}"
        self.last_lost = max(self.last_lost or 0.0, new / expected)
        if lost:
            _common.warn("the BatchSpanProcessor dropped spans (queue full)")
        self._lost = lost

    def metrics(self, n):
        logfire = self.logfire
        info = logfire.info
        with logfire.span("metrics"):
            t0 = time.perf_counter()
            for i in range(n):
                info("loss", value=0.5, step=i)
            t_logged = time.perf_counter()
        self._flush(n + 1)
        return t0, t_logged, time.perf_counter()

    def task(self, n, extract_args=True):
        logfire = self.logfire

        @logfire.instrument("f", extract_args=extract_args)
        def f(x):
            return x

        with logfire.span("task"):
            t0 = time.perf_counter()
            for i in range(n):
                f(i)
            t_called = time.perf_counter()
        self._flush(n + 1)
        return t0, t_called, time.perf_counter()

    def task_bare(self, n):
        return self.task(n, extract_args=False)

    async def concurrent(self, runs, each, every):
        logfire = self.logfire

        async def one(k):
            with logfire.span("concurrent-{k}", k=k):
                for i in range(each):
                    logfire.info("loss", value=0.5, step=i)
                    if i % every == every - 1:
                        await asyncio.sleep(0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(runs)))
        self._flush(runs * (each + 1))
        return t0, time.perf_counter()

    async def eval(self, n, concurrency):
        logfire = self.logfire
        sample, score = _common.sample, _common.score

        @logfire.instrument("sample")
        async def one(x):
            out = await sample(x)
            with logfire.span("score") as span:
                span.set_attribute("score", score(out))
            return out

        with logfire.span("eval"):
            t0 = time.perf_counter()
            await _common.gather_limited(one, range(n), concurrency)
        self._flush(2 * n + 1)
        return t0, time.perf_counter()


if __name__ == "__main__":
    _common.main(LogfirePeer, name="logfire")
