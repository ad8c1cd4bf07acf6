"""OpenTelemetry SDK: a TracerProvider with a BatchSpanProcessor to an OTLP file exporter.

A run is a root span. OpenTelemetry has no per-step metric record in traces: a metric
point is a span event on the run span (the span event limit is lifted; its metrics API
aggregates and keeps no per-step points). A traced task is a child span. Durable: the
run span has ended and ``force_flush()`` has returned (the exporter wrote the file).
"""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version
from typing import ClassVar

import _common
from _otlpfile import OTLPFileSpanExporter, spans_in
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


class OTelPeer:
    NOTES: ClassVar[dict[str, str]] = {
        "metrics": "span.add_event('loss', {value, step}) on the run's root span "
        "(event limit lifted); durable after span end + force_flush",
        "task": "@tracer.start_as_current_span('f') decorator (no inputs/outputs recorded)",
        "concurrent": "one root span per coroutine; OTel context is contextvars-based",
        "eval": "async span per sample, scorer in a child span, score as attribute; "
        "semaphore(100) + asyncio.gather",
    }

    def version(self):
        return version("opentelemetry-sdk")

    def setup(self, directory):
        self.path = directory / "spans.otlp"
        self.exporter = OTLPFileSpanExporter(self.path)
        self.provider = TracerProvider(span_limits=SpanLimits(max_events=10_000_000))
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("bench")
        self.expected_spans = 0

    def _flush(self, expected):
        """Flush; count the spans the BatchSpanProcessor dropped (its queue holds 2048)."""
        self.provider.force_flush()
        self.expected_spans += expected
        lost = self.expected_spans - self.exporter.spans
        new = lost - getattr(self, "_lost", 0)
        self._lost = lost
        self.last_check = f"spans lost: {new} of {expected}"
        self.last_lost = max(self.last_lost or 0.0, new / expected)
        if new:
            _common.warn("the BatchSpanProcessor dropped spans (queue full)")

    def metrics(self, n):
        with self.tracer.start_as_current_span("metrics") as span:
            t0 = time.perf_counter()
            add_event = span.add_event
            for i in range(n):
                add_event("loss", {"value": 0.5, "step": i})
            t_logged = time.perf_counter()
        self._flush(1)
        return t0, t_logged, time.perf_counter()

    def check_metrics(self, n):
        counts = [len(span.events) for span in spans_in(self.path) if span.name == "metrics"]
        ok = counts and all(count == n for count in counts)
        return f"{'ok' if ok else 'MISMATCH'}: events per run span {sorted(set(counts))}"

    def task(self, n):
        tracer = self.tracer

        @tracer.start_as_current_span("f")
        def f(x):
            return x

        with tracer.start_as_current_span("task"):
            t0 = time.perf_counter()
            for i in range(n):
                f(i)
            t_called = time.perf_counter()
        self._flush(n + 1)
        return t0, t_called, time.perf_counter()

    def task_bare(self, n):
        return self.task(n)  # nothing is recorded but the span either way

    async def concurrent(self, runs, each, every):
        tracer = self.tracer

        async def one(k):
            with tracer.start_as_current_span(f"concurrent-{k}") as span:
                for i in range(each):
                    span.add_event("loss", {"value": 0.5, "step": i})
                    if i % every == every - 1:
                        await asyncio.sleep(0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(runs)))
        self._flush(runs)
        return t0, time.perf_counter()

    async def eval(self, n, concurrency):
        tracer = self.tracer
        sample, score = _common.sample, _common.score

        async def one(x):
            with tracer.start_as_current_span("sample") as span:
                span.set_attribute("input", x)
                out = await sample(x)
                span.set_attribute("output", out)
                with tracer.start_as_current_span("score") as scored:
                    value = score(out)
                    scored.set_attribute("score", value)
                span.set_attribute("score", value)
                return out

        with tracer.start_as_current_span("eval"):
            t0 = time.perf_counter()
            await _common.gather_limited(one, range(n), concurrency)
        self._flush(2 * n + 1)
        return t0, time.perf_counter()


if __name__ == "__main__":
    _common.main(OTelPeer, name="opentelemetry")
