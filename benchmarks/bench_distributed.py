"""OTLP export throughput and the cost of continue_run(): the figures in docs/distributed.md.

    python benchmarks/bench_distributed.py [--spans 20000] [--metrics 200000] [--calls 2000]

* otlp spans - one run with N tasks exported by OTLPSink (alone) to a loopback OTLP/HTTP
  receiver in another process that decodes every request; spans/s from the first task
  to the run's exit (everything accepted by the receiver)
* otlp metrics - one run logging N metrics as OTLP gauges; points/s the same way
* continue_run - in a spawned worker process: the first continue_run() (makes the
  process's writer), then the steady cost of ``with continue_run(ctx): log_metric(...)``
  (enter, one metric, exit = flush to the local store); and from a thread

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

import strikes as dn
from strikes.sinks.otlp import OTLPSink

RECEIVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    counts = {"spans": 0, "points": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                counts["spans"] += sum(
                    len(s.spans) for r in request.resource_spans for s in r.scope_spans
                )
            else:
                request = ExportMetricsServiceRequest.FromString(body)
                counts["points"] += sum(
                    len(m.gauge.data_points)
                    for r in request.resource_metrics
                    for s in r.scope_metrics
                    for m in s.metrics
                )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            payload = f"{counts['spans']} {counts['points']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


def received(url: str) -> tuple[int, int]:
    spans, points = httpx.get(url).text.split()
    return int(spans), int(points)


def bench_spans(url: str, count: int) -> None:
    sink = OTLPSink(url)
    dn.configure(sinks=[sink], batch_size=1000)
    before = received(url)[0]
    started = time.perf_counter()
    with dn.run("otlp-spans"):
        for index in range(count):
            with dn.task_span("step"):
                dn.log_param("i", index)
    elapsed = time.perf_counter() - started
    got = received(url)[0] - before
    print(
        f"otlp spans:   {count + 1:>8} spans in {elapsed:6.2f} s = {got / elapsed:>9,.0f} spans/s"
        f" (receiver got {got})"
    )


def bench_metrics(url: str, count: int) -> None:
    sink = OTLPSink(url, max_batch=5000, max_queue=200_000)
    dn.configure(sinks=[sink], batch_size=5000)
    before = received(url)[1]
    started = time.perf_counter()
    with dn.run("otlp-metrics"):
        for index in range(count):
            dn.log_metric("loss", index * 0.5, step=index)
    elapsed = time.perf_counter() - started
    got = received(url)[1] - before
    print(
        f"otlp metrics: {count:>8} points in {elapsed:6.2f} s = {got / elapsed:>9,.0f} points/s"
        f" (receiver got {got})"
    )


def worker(context: dn.RunContext, calls: int) -> tuple[float, float]:
    started = time.perf_counter()
    with dn.continue_run(context):
        dn.log_metric("first", 1.0)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for index in range(calls):
        with dn.continue_run(context):
            dn.log_metric("steady", index)
    return first, (time.perf_counter() - started) / calls


def bench_continue(calls: int, directory: Path) -> None:
    dn.configure(dir=directory)
    with dn.run("continue") as run:
        context = dn.get_run_context()
        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(1) as pool:
            first, steady = pool.apply(worker, (context, calls))
        times: list[tuple[float, float]] = []
        thread = threading.Thread(target=lambda: times.append(worker(context, calls)))
        thread.start()
        thread.join()
    print(
        f"continue_run in a spawned worker: first {first * 1e3:7.2f} ms (makes the writer), "
        f"then {steady * 1e6:7.0f} us per `with continue_run(): log_metric()` (flush on exit)"
    )
    print(
        f"continue_run in a thread:         first {times[0][0] * 1e3:7.2f} ms, "
        f"then {times[0][1] * 1e6:7.0f} us per block"
    )
    record = dn.open_store(directory).run(run.run_id)
    print(f"  read back: {len(record.metrics['steady'])} steady points (expected {2 * calls})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--metrics", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=2_000)
    args = parser.parse_args()
    process, url = start_receiver()
    try:
        bench_spans(url, args.spans)
        bench_metrics(url, args.metrics)
    finally:
        process.terminate()
        process.wait()
    with tempfile.TemporaryDirectory() as tmp:
        bench_continue(args.calls, Path(tmp))


if __name__ == "__main__":
    main()
