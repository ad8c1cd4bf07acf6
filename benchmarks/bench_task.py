"""The cost of a decorated call: @task (sync and async) against the plain function and OTel.

    python benchmarks/bench_task.py [--calls 100000] [--repeats 5]

Each repeat opens a fresh run and calls, in that run, the plain function and then the
task around it (one int argument logged as an input, the return value as the output).
Medians of the repeats, in µs per call:

* plain        - the undecorated function, in the same run
* caller       - wall time inside the task call, as the calling code sees it
* caller CPU   - CPU time of the calling thread only (`time.thread_time`): what the call
                 costs without the time lost to other threads (the run's writer) and
                 other processes
* added        - caller minus plain: what the decorator adds to each call
* end to end   - from the first call until `push_update()` returns (all in the store)
* OTel span    - the plain function inside `tracer.start_as_current_span()` with the same
                 input and output set as span attributes, a BatchSpanProcessor and an
                 exporter that drops the spans (the cheapest OTel can be); skipped when
                 opentelemetry-sdk is not installed (`pip install strikes[bench]`)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import strikes as dn


def plain(x: int) -> int:
    return x + 1


async def plain_async(x: int) -> int:
    return x + 1


task_sync = dn.task(plain)
task_async = dn.task(plain_async)


def measure_sync(calls: int) -> dict[str, float]:
    """One repeat of the sync figures, µs per call."""
    clock, cpu = time.perf_counter, time.thread_time
    with dn.run("bench-sync"):
        start = clock()
        for i in range(calls):
            plain(i)
        base = clock() - start
        start, start_cpu = clock(), cpu()
        for i in range(calls):
            task_sync(i)
        caller, caller_cpu = clock() - start, cpu() - start_cpu
        dn.push_update()
        durable = clock() - start
    return _figures(calls, base, caller, caller_cpu, durable)


async def _measure_async(calls: int) -> dict[str, float]:
    clock, cpu = time.perf_counter, time.thread_time
    async with dn.run("bench-async"):
        start = clock()
        for i in range(calls):
            await plain_async(i)
        base = clock() - start
        start, start_cpu = clock(), cpu()
        for i in range(calls):
            await task_async(i)
        caller, caller_cpu = clock() - start, cpu() - start_cpu
        await dn.push_update_async()
        durable = clock() - start
    return _figures(calls, base, caller, caller_cpu, durable)


def measure_async(calls: int) -> dict[str, float]:
    """One repeat of the async figures (asyncio), µs per call."""
    return asyncio.run(_measure_async(calls))


def _figures(
    calls: int, base: float, caller: float, caller_cpu: float, durable: float
) -> dict[str, float]:
    per = 1e6 / calls
    return {
        "plain": base * per,
        "caller": caller * per,
        "caller CPU": caller_cpu * per,
        "added": (caller - base) * per,
        "end to end": durable * per,
    }


def otel_tracer() -> tuple[Any, Callable[[], object]] | None:
    """A tracer with a BatchSpanProcessor and a dropping exporter, and its flush; or None."""
    try:  # optional: the reference column only
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider.get_tracer("bench"), provider.force_flush


def measure_otel_sync(calls: int, tracer: Any) -> float:
    start = time.perf_counter()
    for i in range(calls):
        with tracer.start_as_current_span("plain") as span:
            span.set_attribute("input.x", i)
            span.set_attribute("output", plain(i))
    return (time.perf_counter() - start) * 1e6 / calls


async def _measure_otel_async(calls: int, tracer: Any) -> float:
    start = time.perf_counter()
    for i in range(calls):
        with tracer.start_as_current_span("plain") as span:
            span.set_attribute("input.x", i)
            span.set_attribute("output", await plain_async(i))
    return (time.perf_counter() - start) * 1e6 / calls


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    dn.configure(dir=Path(tempfile.mkdtemp(prefix="bench-task-")))
    otel = otel_tracer()

    columns = ["plain", "caller", "caller CPU", "added", "end to end", "OTel span"]
    print(
        f"@task call cost, {args.calls:,} calls x {args.repeats} repeats (medians), "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'µs/call':<8}" + "".join(f"{c:>12}" for c in columns))
    for kind, measure in (("sync", measure_sync), ("async", measure_async)):
        rows = [measure(args.calls) for _ in range(args.repeats)]
        medians = {c: statistics.median(row[c] for row in rows) for c in columns[:-1]}
        if otel is not None:
            tracer, flush = otel
            if kind == "sync":
                runs = [measure_otel_sync(args.calls, tracer) for _ in range(args.repeats)]
            else:
                runs = [
                    asyncio.run(_measure_otel_async(args.calls, tracer))
                    for _ in range(args.repeats)
                ]
            flush()
            otel_cell = f"{statistics.median(runs):>12.2f}"
        else:
            otel_cell = f"{'-':>12}"
        print(f"{kind:<8}" + "".join(f"{medians[c]:>12.2f}" for c in columns[:-1]) + otel_cell)
    if otel is None:
        print("OTel span: skipped, opentelemetry-sdk is not installed (pip install strikes[bench])")


if __name__ == "__main__":
    main()
