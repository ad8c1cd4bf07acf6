"""Read-side figures: list 10,000 runs, load a run of 1,000,000 metric points, export it.

Usage: python benchmarks/bench_read.py [--runs 10000] [--points 1000000] [--dir PATH]

The many-runs store is written through the LocalStore sink directly (one batch per run:
start, params, a few metrics, finish) so generation stays quick; the big run is logged
through the public API (``dn.run`` / ``dn.log_metric``). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import strikes as dn
from strikes.events import Metric, Param, RunFinished, RunStarted
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch
from strikes.sinks.local import LocalStore


async def _write_many(path: Path, count: int) -> None:
    sink = LocalStore(path)
    await sink.open()
    base = time.time_ns() - count * 1_000_000
    for index in range(count):
        run_id = os.urandom(16).hex()
        span = os.urandom(8).hex()
        ts = base + index * 1_000_000
        events = [
            RunStarted(run_id, span, "", 0, ts, f"run-{index}", f"project-{index % 10}", (f"t{index % 3}",)),
            Param(run_id, span, "", 1, ts + 1, "lr", 10 ** -(index % 5)),
            Param(run_id, span, "", 2, ts + 2, "seed", index),
        ]
        events += [Metric(run_id, span, "", 3 + step, ts + 3 + step, "loss", 1 / (step + 1), step) for step in range(10)]
        events.append(RunFinished(run_id, span, "", 20, ts + 20, "finished"))
        state = RunState(run_id, owner=True)
        state.fold(events)
        await sink.write(Batch(run_id=run_id, writer_id="bench", events=events, blobs=[], state=state, final=True))
    await sink.close()


def _timed(label: str, func):  # noqa: ANN202
    start = time.perf_counter()
    result = func()
    print(f"{label:<48} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the generated store here")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="strikes-bench-read-"))
    try:
        big = root / "big"
        dn.configure(dir=big)

        def log() -> None:
            with dn.run("big"):
                for step in range(args.points):
                    dn.log_metric("loss", 1.0 / (step + 1), step=step)

        _timed(f"log {args.points:,} points: dn.log_metric", log)
        store = dn.open_store(big)
        record = _timed("open the run (manifest only)", lambda: store.runs()[0])
        points = _timed(f"load {args.points:,} points: run.metrics", lambda: record.metrics["loss"])
        assert len(points) == args.points
        del points, record
        for attempt in (2, 3):
            again = store.runs()[0]
            _timed(f"load again ({attempt})", lambda again=again: len(again.metrics["loss"]))
            del again
        fresh = store.runs()[0]
        _timed("metrics table (columns) of the run", lambda: store.table("metrics", [fresh]))
        try:
            _timed("metrics DataFrame (pandas)", lambda: store.dataframe("metrics", [fresh]))
            _timed("metrics to Parquet", lambda: store.export("metrics", root / "m.parquet", [fresh]))
        except ImportError as exc:
            print(f"(pandas skipped: {exc})")
        size = sum(f.stat().st_size for f in (big / "runs").rglob("*.seg"))
        print(f"segment bytes per point: {size / args.points:.1f}")
        many = root / "many"
        _timed(f"generate {args.runs:,} runs (LocalStore sink)", lambda: asyncio.run(_write_many(many, args.runs)))
        store = dn.open_store(many)
        runs = _timed(f"list {args.runs:,} runs: Store.runs()", store.runs)
        assert len(runs) == args.runs
        _timed("list again (warm page cache)", store.runs)
        _timed("filter: project, tag, param", lambda: store.runs(project="project-3", tags=["t1"], params={"seed": 3}))
        _timed("runs table as pandas DataFrame", lambda: store.dataframe("runs"))

    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
