"""Backpressure, sink outages and crashes: the figures behind docs/reliability.md.

    python benchmarks/bench_backpressure.py [--events 300000] [--crash-trials 50]

Each scenario runs in a fresh subprocess so its peak RSS is its own:

* target - mailbox_size=10_000, batch_size=1000, a sink that takes 2 ms per batch,
  300,000 metrics from one producer, for each backpressure policy
* 10x - the same, with the sink made 10 times slower than the measured producer
* outage - a sink that raises for 1 s while a producer keeps logging (default delivery
  policy): time from the end of the outage to the first batch it takes again, what was
  spooled meanwhile, and the time to re-send the spool
* crash - writers killed with SIGKILL at random points; each store read back

RSS growth is the peak resident set (VmHWM, reset before the run) minus the resident set
just before the first metric; Linux only. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import strikes as dn
from strikes.events import Metric
from strikes.sinks.base import Batch

POLICIES = ("block", "drop_newest", "drop_oldest")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


class SlowSink(dn.Sink):
    """Counts metrics; sleeps ``delay`` seconds per batch, like a remote backend."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.metrics = 0

    async def write(self, batch: Batch) -> None:
        """Wait, then count."""
        if self.delay:
            await asyncio.sleep(self.delay)
        self.metrics += sum(1 for e in batch.events if type(e) is Metric)


def _produce(events: int, policy: str, delay: float) -> dict[str, Any]:
    sink = SlowSink(delay)
    dn.configure(sinks=[sink], batch_size=1000, mailbox_size=10_000, backpressure=policy)  # type: ignore[arg-type]
    log_metric = dn.log_metric
    _reset_peak()
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    with dn.run("bench") as run:
        for step in range(events):
            log_metric("loss", 0.5, step=step)
        logged = time.perf_counter()
    done = time.perf_counter()
    dropped = run.stats["dropped"]
    return {
        "policy": policy,
        "sink_ms_per_batch": round(delay * 1000, 2),
        "produced": events,
        "delivered": sink.metrics,
        "dropped": dropped,
        "lost": events - sink.metrics - dropped,
        "rss_growth_mb": round((_status_kb("VmHWM") - before) / 1024, 1),
        "producer_s": round(logged - start, 3),
        "total_s": round(done - start, 3),
    }


def _calibrate(events: int = 100_000) -> float:
    """Seconds per log_metric call with a sink that keeps up."""
    dn.configure(sinks=[SlowSink(0)], batch_size=1000, mailbox_size=10_000)
    with dn.run("calibrate"):
        start = time.perf_counter()
        for step in range(events):
            dn.log_metric("loss", 0.5, step=step)
        elapsed = time.perf_counter() - start
    return elapsed / events


def scenario_target(events: int, policy: str) -> dict[str, Any]:
    """The issue's target: a sink taking 2 ms per batch of 1,000."""
    return _produce(events, policy, 0.002)


def scenario_10x(events: int, policy: str) -> dict[str, Any]:
    """A producer 10x faster than the sink."""
    per_call = _calibrate()
    result = _produce(events, policy, 10 * 1000 * per_call)
    result["producer_us_per_call_unthrottled"] = round(per_call * 1e6, 3)
    return result


class OutageSink(dn.Sink):
    """Raises until ``healthy_at`` (monotonic), then takes batches and notes when."""

    def __init__(self, healthy_at: float) -> None:
        self.healthy_at = healthy_at
        self.accepted: list[float] = []
        self.metrics = 0

    async def write(self, batch: Batch) -> None:
        """Fail during the outage, else count."""
        if time.monotonic() < self.healthy_at:
            raise ConnectionError("backend down")
        self.accepted.append(time.monotonic())
        self.metrics += sum(1 for e in batch.events if type(e) is Metric)


def scenario_outage(outage: float = 1.0, duration: float = 3.0) -> dict[str, Any]:
    """A sink down for ``outage`` seconds while a producer logs ~100k metrics/s."""
    directory = Path(tempfile.mkdtemp())
    start = time.monotonic()
    sink = OutageSink(start + outage)
    dn.configure(sinks=[sink], dir=directory, batch_size=1000, mailbox_size=10_000)
    produced = 0
    with dn.run("outage") as run:
        while time.monotonic() - start < duration:
            for _ in range(100):
                dn.log_metric("m", produced, step=produced)
                produced += 1
            time.sleep(0.001)
    stats = run.stats
    recovered = sink.accepted[0] - sink.healthy_at if sink.accepted else None
    delivered_live = sink.metrics
    resend_start = time.perf_counter()
    report = dn.resend_spool(sink, path=directory / "spool")
    resend_s = time.perf_counter() - resend_start
    return {
        "outage_s": outage,
        "produced": produced,
        "delivered_live": delivered_live,
        "spooled_events": stats["spooled"],
        "undelivered": stats["undelivered"],
        "recovery_s": None if recovered is None else round(recovered, 3),
        "resend_batches": report.batches,
        "resend_s": round(resend_s, 3),
        "delivered_after_resend": sink.metrics,
        "lost": produced - sink.metrics,
    }


WRITER = """
import strikes as dn
dn.configure(flush_interval=3600, batch_size=100, mailbox_size=1000)
with dn.run("victim") as run:
    print(run.run_id, flush=True)
    i = 0
    while True:
        dn.log_metric("m", i, step=i)
        i += 1
        if i % 250 == 0:
            dn.push_update()
            print(i, flush=True)
"""


def crash_trial(directory: Path, seed: int) -> bool:
    """Kill a writer at a random point; True when the store reads back as promised."""
    rng = random.Random(seed)
    script = directory / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    store = directory / "store"
    with subprocess.Popen(
        [sys.executable, str(script)],
        env={**os.environ, "STRIKES_DIR": str(store)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None
        run_id = process.stdout.readline().strip()
        flushed = 0
        for _ in range(rng.randint(1, 12)):
            flushed = int(process.stdout.readline())
        time.sleep(rng.random() * 0.01)  # land anywhere, mid-batch included
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    try:
        record = dn.open_store(store).run(run_id)
        steps = [p.step for p in record.metrics.get("m", [])]
    except Exception:
        return False
    return steps == list(range(len(steps))) and len(steps) >= flushed and record.status == "running"


def scenario_crash(trials: int) -> dict[str, Any]:
    """``trials`` kill -9 trials, three at a time."""
    root = Path(tempfile.mkdtemp())
    results: list[bool] = []
    lock = threading.Lock()

    def worker(seeds: range) -> None:
        for seed in seeds:
            directory = root / f"trial-{seed}"
            directory.mkdir()
            ok = crash_trial(directory, seed)
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=worker, args=(range(i, trials, 3),)) for i in range(3)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "trials": trials,
        "survived": sum(results),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _in_subprocess(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "STRIKES_DIR": tempfile.mkdtemp()},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run every scenario and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--crash-trials", type=int, default=50)
    parser.add_argument("--child", nargs="*")
    args = parser.parse_args()
    if args.child:
        name, *rest = args.child
        if name == "target":
            result = scenario_target(int(rest[0]), rest[1])
        elif name == "10x":
            result = scenario_10x(int(rest[0]), rest[1])
        else:
            result = scenario_outage()
        print(json.dumps(result))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for scenario in ("target", "10x"):
        print(f"\n== {scenario}: {args.events:,} metrics, mailbox 10,000, batch 1,000")
        for policy in POLICIES:
            print(json.dumps(_in_subprocess(scenario, str(args.events), policy)))
    print("\n== outage: sink down 1 s, default DeliveryPolicy")
    print(json.dumps(_in_subprocess("outage")))
    print(f"\n== crash: {args.crash_trials} writers killed with SIGKILL at random points")
    print(json.dumps(scenario_crash(args.crash_trials)))


if __name__ == "__main__":
    main()
