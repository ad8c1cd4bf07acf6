"""log_metric: caller cost, end-to-end throughput to the local store, and the Python floor.

    python benchmarks/bench_log_metric.py [--events 300000] [--repeats 5]

All figures come from one run on one machine, medians of the repeats:

* caller µs/call  - time spent inside `dn.log_metric` by the logging code
* end-to-end µs/event - from the first call until `push_update()` returns (in the store)
* floor - build the same msgspec Structs, append them to a list, batch-encode and write
  them to a file, no library around it: the cheapest a Python logger could be
* peak RSS - measured in a fresh subprocess per event count, to show memory does not
  grow with the number of events
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import strikes as dn
from strikes.events import Metric, encode_events
from strikes.store.segments import frame


def bench_strikes(events: int, directory: Path) -> tuple[float, float]:
    """Return (caller µs/call, end-to-end µs/event) for one run of `events` metrics."""
    dn.configure(dir=directory)
    log_metric = dn.log_metric
    with dn.run("bench"):
        start = time.perf_counter()
        for step in range(events):
            log_metric("loss", 0.5, step=step)
        logged = time.perf_counter()
        dn.push_update()
        durable = time.perf_counter()
    return (logged - start) / events * 1e6, (durable - start) / events * 1e6


def bench_floor(events: int, directory: Path, batch_size: int = 1000) -> float:
    """Return µs/event to build, append, batch-encode and write the same events."""
    run_id, span_id = "0" * 32, "1" * 16
    seq = itertools.count().__next__
    time_ns = time.time_ns
    path = directory / "floor.seg"
    start = time.perf_counter()
    with path.open("ab", buffering=0) as handle:
        batch: list[Metric] = []
        append = batch.append
        for step in range(events):
            append(Metric(run_id, span_id, "", seq(), time_ns(), "loss", 0.5, step))
            if len(batch) >= batch_size:
                handle.write(frame(encode_events(batch)))  # type: ignore[arg-type]
                batch.clear()
        if batch:
            handle.write(frame(encode_events(batch)))  # type: ignore[arg-type]
        os.fsync(handle.fileno())
    return (time.perf_counter() - start) / events * 1e6


def peak_rss_mb(events: int) -> float:
    """Peak RSS of a fresh process that logs `events` metrics in one run."""
    code = (
        "import resource, sys, tempfile, strikes as dn\n"
        "dn.configure(dir=tempfile.mkdtemp())\n"
        "with dn.run('rss'):\n"
        f"    for i in range({events}): dn.log_metric('loss', 0.5, step=i)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    callers, ends, floors = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            caller, end = bench_strikes(args.events, Path(tmp) / f"store{repeat}")
            floor = bench_floor(args.events, Path(tmp))
            callers.append(caller)
            ends.append(end)
            floors.append(floor)
    caller, end, floor = (statistics.median(v) for v in (callers, ends, floors))
    python = sys.version.split()[0]
    print(f"log_metric, {args.events:,} events x {args.repeats} repeats (medians), Python {python}")
    print(f"{'':32}{'µs/event':>10}{'events/s':>14}{'x floor':>10}")
    print(f"{'floor (struct+append+encode+write)':32}{floor:10.3f}{1e6 / floor:14,.0f}{1.0:10.2f}")
    ratio = caller / floor
    print(f"{'strikes caller (in log_metric)':32}{caller:10.3f}{1e6 / caller:14,.0f}{ratio:10.2f}")
    print(f"{'strikes end to end (in store)':32}{end:10.3f}{1e6 / end:14,.0f}{end / floor:10.2f}")
    small, large = args.events // 10, args.events * 3
    print(
        f"peak RSS: {peak_rss_mb(small):.1f} MB for {small:,} events, "
        f"{peak_rss_mb(large):.1f} MB for {large:,} events"
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process peaked at {own:.1f} MB)")


if __name__ == "__main__":
    main()
