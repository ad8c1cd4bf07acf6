"""Read-side figures: load a run of 1,000,000 metric points, list 10,000 runs, export.

Usage: python benchmarks/bench_read.py [--runs 10000] [--points 1000000] [--dir PATH]

The big run is logged through the public API (``dn.run`` / ``dn.log_metric``). The
many-runs store is written through the LocalStore sink directly (one batch per run:
start, two params, ten metric points, finish), which keeps generation to seconds while
producing the same files. Prints figures, asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import strikes as dn
from strikes.events import Event, Metric, Param, RunFinished, RunStarted
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch
from strikes.sinks.local import LocalStore

T = TypeVar("T")


def _events(index: int, ts: int) -> tuple[str, list[Event]]:
    run_id, span = os.urandom(16).hex(), os.urandom(8).hex()
    tags = (f"t{index % 3}",)
    events: list[Event] = [
        RunStarted(run_id, span, "", 0, ts, f"run-{index}", f"project-{index % 10}", tags),
        Param(run_id, span, "", 1, ts + 1, "lr", 10 ** -(index % 5)),
        Param(run_id, span, "", 2, ts + 2, "seed", index),
    ]
    events += [
        Metric(run_id, span, "", 3 + step, ts + 3 + step, "loss", 1 / (step + 1), step)
        for step in range(10)
    ]
    events.append(RunFinished(run_id, span, "", 20, ts + 20, "finished"))
    return run_id, events


async def _write_many(path: Path, count: int) -> None:
    sink = LocalStore(path)
    await sink.open()
    base = time.time_ns() - count * 1_000_000
    for index in range(count):
        run_id, events = _events(index, base + index * 1_000_000)
        state = RunState(run_id, owner=True)
        state.fold(events)
        batch = Batch(
            run_id=run_id, writer_id="bench", events=events, blobs=[], state=state, final=True
        )
        await sink.write(batch)
    await sink.close()


def _timed(label: str, func: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = func()
    print(f"{label:<48} {time.perf_counter() - start:8.3f} s")
    return result


def bench_big_run(root: Path, points: int) -> None:
    big = root / "big"
    dn.configure(dir=big)

    def log() -> None:
        with dn.run("big"):
            for step in range(points):
                dn.log_metric("loss", 1.0 / (step + 1), step=step)

    _timed(f"log {points:,} points: dn.log_metric", log)
    store = dn.open_store(big)
    _timed("open the run (manifest only)", lambda: store.runs()[0])
    for attempt in (1, 2, 3):
        record = store.runs()[0]  # a fresh record: nothing cached
        loaded = _timed(
            f"load {points:,} points: run.metrics ({attempt})", lambda r=record: r.metrics["loss"]
        )
        assert len(loaded) == points
        del loaded, record
    _timed("metrics table of the run (load + columns)", lambda: store.table("metrics", ["big"]))
    try:
        _timed("metrics DataFrame, pandas (load + frame)", lambda: store.dataframe("metrics"))
        _timed("metrics to Parquet (load + write)", lambda: store.export("metrics", root / "m.pq"))
    except ImportError as exc:
        print(f"(pandas skipped: {exc})")
    size = sum(f.stat().st_size for f in (big / "runs").rglob("*.seg"))
    print(f"segment bytes per point: {size / points:.1f}")


def bench_many_runs(root: Path, count: int) -> None:
    many = root / "many"
    _timed(
        f"generate {count:,} runs (LocalStore sink)", lambda: asyncio.run(_write_many(many, count))
    )
    store = dn.open_store(many)
    listed = _timed(f"list {count:,} runs: Store.runs()", store.runs)
    assert len(listed) == count
    _timed("list again", store.runs)
    _timed(
        "filter: project, tag, param",
        lambda: store.runs(project="project-3", tags=["t1"], params={"seed": 3}),
    )
    _timed("resolve a run by name", lambda: store.resolve("run-42"))
    try:
        _timed("runs table as pandas DataFrame (list + frame)", lambda: store.dataframe("runs"))
    except ImportError as exc:
        print(f"(pandas skipped: {exc})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the generated stores here")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="strikes-bench-read-"))
    try:
        bench_big_run(root, args.points)
        bench_many_runs(root, args.runs)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
