"""The harness every peer worker shares: arguments, repeats, timing, disk and memory figures.

Standard library only: this file is imported by the workers of every peer's virtualenv.

A worker runs ONE workload in a fresh process (so peak RSS belongs to that workload) and
prints one line ``RESULT {json}`` on stdout. A peer implements, on a class handed to
:func:`main`, the workloads it supports:

* ``setup(directory)``          configure the library to write under ``directory``
* ``metrics(n)``                log ``n`` metrics in one run; return ``(t0, t_logged, t_durable)``
* ``task(n)``                   call a trivial traced function ``n`` times inside a run;
                                return ``(t0, t_called, t_durable)``
* ``concurrent(runs, each, every)``  an ``async`` method: ``runs`` runs under asyncio.gather,
                                ``each`` metrics each, ``await asyncio.sleep(0)`` every
                                ``every``; returns ``(t0, t_durable)`` or ``(t0, t_durable, check)``
* ``eval(n, concurrency)``      an ``async`` method: ``n`` samples through an async traced
                                task with a scorer, ``concurrency`` at a time;
                                returns ``(t0, t_durable)`` or ``(t0, t_durable, check)``
* ``task_bare(n)``              optional: as ``task`` with no inputs or outputs recorded
* ``check_metrics(n)``          optional: after the last repeat, read back what was stored and
                                return a short string (counted outside the clock)

Times come from ``time.perf_counter()``. "Durable" means the data is written to files
under ``directory`` (it survives the process being killed); nobody calls ``fsync``.
A workload a peer cannot do is named in ``UNSUPPORTED`` with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

WORKLOADS = ("metrics", "task", "concurrent", "eval")


# -- the plain references the "added" figures subtract -------------------------------------


def plain(x):
    return x


async def sample(x):
    """The async task body of the eval workload: yields to the loop once, like an API call."""
    await asyncio.sleep(0)
    return x * 2


def score(output):
    """The scorer of the eval workload."""
    return float(output % 3 == 0)


def plain_task_us(n: int) -> float:
    """µs per call of the untraced function, called the way every worker calls its task."""
    f = plain
    t0 = time.perf_counter()
    for i in range(n):
        f(i)
    return (time.perf_counter() - t0) / n * 1e6


async def plain_eval(n: int, concurrency: int) -> float:
    """Seconds for the eval workload with no library: a semaphore and asyncio.gather."""
    sem = asyncio.Semaphore(concurrency)

    async def one(x):
        async with sem:
            score(await sample(x))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0


async def gather_limited(func, items, concurrency: int):
    """Run ``await func(item)`` for every item, at most ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)

    async def one(item):
        async with sem:
            return await func(item)

    return await asyncio.gather(*(one(item) for item in items))


# -- measuring ------------------------------------------------------------------------------


def dir_bytes(path: str | os.PathLike[str]) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a library may remove a file meanwhile
                total += (Path(root) / name).lstat().st_size
    return total


def rss_mb() -> float:
    """The resident set size now, in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


WARNINGS: list[str] = []


def warn(text: str) -> None:
    """Report something about this run of the workload (data lost, an API missing...)."""
    if text not in WARNINGS:
        WARNINGS.append(text)


def children_rss_mb() -> float:
    """RSS of this process's descendants now, in MB (W&B's service process, for one)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
    me, found, frontier = os.getpid(), set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    found.discard(me)
    return sum(rss[pid] for pid in found) * os.sysconf("SC_PAGE_SIZE") / 1e6


class UnsupportedError(Exception):
    """Raised by a peer that finds at run time that it cannot do a workload."""


def _unpack(result):
    if len(result) == 3:
        return result[0], result[1], result[2]
    return result[0], result[1], None


def _repeats(args, body, peer) -> list[dict[str, Any]]:
    """Call ``body(index)`` ``args.repeats`` times, fewer once ``args.budget`` seconds are spent.

    A peer may set ``last_check`` (what it read back, what it lost) and ``last_lost`` (the
    fraction of the spans or events it should have written that it dropped) during a repeat.
    """
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for index in range(args.repeats):
        gc.collect()
        peer.last_check = None
        peer.last_lost = None
        record = body(index)
        if peer.last_check and "check" not in record:
            record["check"] = peer.last_check
        if peer.last_lost is not None:
            record["lost_fraction"] = peer.last_lost
        records.append(record)
        if index + 1 >= args.min_repeats and time.perf_counter() - started > args.budget:
            break
    return records


def run_workload(peer: Any, args: argparse.Namespace) -> dict[str, Any]:  # noqa: C901 - one branch per workload
    workload = args.workload
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    rss_before_setup = rss_mb()
    peer.setup(directory)
    rss_setup = rss_mb()
    extra: dict[str, Any] = {"rss_after_setup_mb": round(rss_setup, 1)}

    if workload == "metrics":
        n = args.n

        def body(index: int) -> dict[str, Any]:
            before = dir_bytes(directory)
            t0, t_logged, t_durable = peer.metrics(n)
            written = dir_bytes(directory) - before
            record = {
                "caller_us": (t_logged - t0) / n * 1e6,
                "e2e_us": (t_durable - t0) / n * 1e6,
                "bytes_per_event": written / n,
            }
            if index == 0:
                record["peak_rss_mb"] = peak_rss_mb()
                record["rss_growth_mb"] = peak_rss_mb() - rss_setup
                children = children_rss_mb()
                if children:
                    record["children_rss_mb"] = children
            return record

        records = _repeats(args, body, peer)
        check = getattr(peer, "check_metrics", None)
        if check is not None:
            extra["check"] = check(n)

    elif workload == "task":
        n = args.n

        def body(index: int) -> dict[str, Any]:
            base = min(plain_task_us(n) for _ in range(3))
            before = dir_bytes(directory)
            t0, t_called, t_durable = peer.task(n)
            written = dir_bytes(directory) - before
            record = {
                "plain_us": base,
                "caller_added_us": (t_called - t0) / n * 1e6 - base,
                "added_us": (t_durable - t0) / n * 1e6 - base,
                "bytes_per_call": written / n,
            }
            bare = getattr(peer, "task_bare", None)
            if bare is not None:  # the same calls with no inputs or outputs recorded
                t0, _t_called, t_durable = bare(n)
                record["bare_added_us"] = (t_durable - t0) / n * 1e6 - base
            return record

        records = _repeats(args, body, peer)

    elif workload == "concurrent":

        def body(index: int) -> dict[str, Any]:
            t0, t_durable, check = _unpack(
                asyncio.run(peer.concurrent(args.runs, args.n, args.every))
            )
            record: dict[str, Any] = {"wall_s": t_durable - t0}
            record["us_per_event"] = record["wall_s"] / (args.runs * args.n) * 1e6
            if check is not None:
                record["check"] = check
            return record

        records = _repeats(args, body, peer)

    elif workload == "eval":

        def body(index: int) -> dict[str, Any]:
            base = min(asyncio.run(plain_eval(args.n, args.concurrency)) for _ in range(3))
            t0, t_durable, check = _unpack(asyncio.run(peer.eval(args.n, args.concurrency)))
            wall = t_durable - t0
            record: dict[str, Any] = {
                "wall_s": wall,
                "plain_s": base,
                "us_per_sample": wall / args.n * 1e6,
                "added_us": (wall - base) / args.n * 1e6,
            }
            if check is not None:
                record["check"] = check
            return record

        records = _repeats(args, body, peer)
    else:  # pragma: no cover - argparse restricts the choices
        raise ValueError(workload)

    extra["rss_before_setup_mb"] = round(rss_before_setup, 1)
    return {"repeats": records, **extra}


def main(peer_class: type, *, name: str) -> None:
    parser = argparse.ArgumentParser(description=f"benchmark worker for {name}")
    parser.add_argument("--workload", choices=(*WORKLOADS, "version"), required=True)
    parser.add_argument("--n", type=int, default=1000, help="events (or samples) per run")
    parser.add_argument("--runs", type=int, default=100, help="concurrent runs")
    parser.add_argument("--every", type=int, default=100, help="await after this many metrics")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-repeats", type=int, default=1)
    parser.add_argument("--budget", type=float, default=1e9, help="stop repeating after (s)")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()

    peer = peer_class()
    result: dict[str, Any] = {
        "peer": name,
        "workload": args.workload,
        "python": platform.python_version(),
    }
    try:
        result["version"] = peer.version()
    except Exception as exc:
        result["version"] = None
        result["version_error"] = repr(exc)
    if args.workload != "version":
        unsupported = getattr(peer_class, "UNSUPPORTED", {})
        result["notes"] = getattr(peer_class, "NOTES", {}).get(args.workload, "")
        result["support"] = getattr(peer_class, "SUPPORT", {}).get(args.workload, "yes")
        if args.workload in unsupported:
            result.update(supported=False, reason=unsupported[args.workload])
        else:
            try:
                result.update(supported=True, **run_workload(peer, args))
            except UnsupportedError as exc:
                result.update(supported=False, reason=str(exc))
            except BaseException as exc:
                result.update(
                    supported=False,
                    error=True,
                    reason=f"failed: {type(exc).__name__}: {exc}"[:500],
                    traceback=traceback.format_exc()[-3000:],
                )
    if WARNINGS:
        result["warnings"] = WARNINGS
    sys.stdout.flush()
    print("RESULT " + json.dumps(result), flush=True)
    teardown = getattr(peer, "teardown", None)
    if teardown is not None:
        with contextlib.suppress(Exception):
            teardown()
    sys.stdout.flush()
    # Some libraries block at interpreter exit (atexit flushes, service processes): the
    # result is out, so leave without running them.
    os._exit(0)


def median(values: list[float]) -> float:
    return statistics.median(values)
