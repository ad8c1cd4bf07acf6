"""Provenance capture at run start, run start and end with it on and off, sampler CPU cost.

    python benchmarks/bench_provenance.py [--repeats 20] [--seconds 30] [--cwd DIR]

Figures, medians of the repeats, printed without any pass/fail:

* cold capture - the first `capture_provenance` in a fresh interpreter (package list
  scanned, platform read), module import excluded, in a new process per repeat
* warm capture - later captures in one process (the package list cached), with a
  breakdown by part; git runs in `--cwd` (default: the current directory), and a dirty
  tree costs one more `git diff`
* run start and end - `with dn.run(): ...` in `--cwd`, provenance on and off, package
  list warm: the caller's time in `__enter__`, in `__exit__` of an empty run (which waits
  for the capture still running on the runtime's worker thread), and in `__exit__` of a
  run that lasted 50 ms (the capture long done)
* sampler CPU - process CPU time over wall time while a `SystemSampler` samples every
  second and the main thread waits; the sampler thread's own CPU time (read in `emit`)
  gives the same figure without the interpreter's background noise
* sampler in a run - process CPU over wall time of an open, idle run with
  `system_metrics=1.0` (samples go through the run's actor into the store), minus the
  same idle run without it
* per sample - the cost of one psutil (and NVML, if present) sample, taken directly
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import strikes as dn
from strikes._provenance import ProvenanceOptions, capture_provenance
from strikes._sysmetrics import SystemSampler, _import_nvml, _import_psutil, _Probes

COLD = """
import sys, time
from pathlib import Path
from strikes._provenance import ProvenanceOptions, capture_provenance
start = time.perf_counter()
capture_provenance(ProvenanceOptions(), cwd=Path(sys.argv[1]))
print(time.perf_counter() - start)
"""

PARTS = {
    "git": ProvenanceOptions(command=False, python=False, packages=False, env=False),
    "command": ProvenanceOptions(git=False, python=False, packages=False, env=False),
    "python": ProvenanceOptions(git=False, command=False, packages=False, env=False),
    "packages": ProvenanceOptions(git=False, command=False, python=False, env=False),
    "env": ProvenanceOptions(git=False, command=False, python=False, packages=False),
}


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def median_time(options: ProvenanceOptions, cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        capture_provenance(options, cwd=cwd)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_capture(cwd: Path, repeats: int) -> None:
    cold = [
        float(
            subprocess.run(
                [sys.executable, "-c", COLD, str(cwd)], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(repeats)
    ]
    provenance, blobs = capture_provenance(ProvenanceOptions(), cwd=cwd)  # warms the cache
    print(f"capture in {cwd} (git dirty: {provenance.git_dirty}, {len(blobs)} blobs)")
    print(f"  cold capture            {ms(statistics.median(cold))}")
    print(f"  warm capture            {ms(median_time(ProvenanceOptions(), cwd, repeats))}")
    for part, options in PARTS.items():
        print(f"    {part:<21} {ms(median_time(options, cwd, repeats))}")


def bench_run_start(cwd: Path, repeats: int) -> None:
    """Caller-side ms of run enter/exit with provenance on and off (warm package list)."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory() as directory:
        os.chdir(cwd)
        try:
            dn.configure(dir=Path(directory) / "store")
            for _ in range(3):  # start the runtime, open the store, scan the packages
                with dn.run("warm-up"):
                    pass
            print(f"run start and end in {cwd} (ms per run, medians of {repeats})")
            print("                          enter   exit (empty)   exit (50 ms run)")
            for label, provenance in (("provenance off", False), ("provenance on", True)):
                enter, exit_empty, exit_later = [], [], []
                for _ in range(repeats):
                    run = dn.run("bench", provenance=provenance)
                    start = time.perf_counter()
                    run.__enter__()
                    entered = time.perf_counter()
                    run.__exit__(None, None, None)
                    enter.append(entered - start)
                    exit_empty.append(time.perf_counter() - entered)
                    with dn.run("bench", provenance=provenance) as run:
                        time.sleep(0.05)
                        leaving = time.perf_counter()
                    exit_later.append(time.perf_counter() - leaving)
                print(
                    f"  {label:<20} {ms(statistics.median(enter))} "
                    f"{ms(statistics.median(exit_empty))}   "
                    f"{ms(statistics.median(exit_later))}"
                )
        finally:
            os.chdir(previous)


def bench_run_sampler(seconds: float) -> None:
    """Process CPU of an idle open run with the sampler at 1 s, minus one without it."""
    try:
        _import_psutil()
    except ImportError as error:
        print(f"sampler in a run: skipped ({error})")
        return
    idle = threading.Event()
    with tempfile.TemporaryDirectory() as directory:
        dn.configure(dir=Path(directory) / "store")
        shares = {}
        for label, interval in (("without", False), ("with", 1.0)):
            with dn.run("idle", system_metrics=interval) as run:
                cpu0, wall0 = cpu_seconds(), time.perf_counter()
                idle.wait(seconds)
                shares[label] = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        samples = len(
            dn.open_store(Path(directory) / "store")
            .run(run.run_id)
            .metrics.get("sys.memory.rss_bytes", [])
        )
    print(f"sampler in an idle run at 1 s for {seconds:.0f} s ({samples} samples stored)")
    print(f"  process CPU, run without sampler  {shares['without'] * 100:8.3f} % of one core")
    print(f"  process CPU, run with sampler     {shares['with'] * 100:8.3f} % of one core")
    print(
        f"  the sampler's share               {(shares['with'] - shares['without']) * 100:8.3f} %"
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_sampler(seconds: float) -> None:
    try:
        psutil = _import_psutil()
    except ImportError as error:
        print(f"sampler: skipped ({error})")
        return
    probes = _Probes(psutil, _import_nvml())
    count = 1000
    start = time.perf_counter()
    for _ in range(count):
        probes.sample()
    per_sample = (time.perf_counter() - start) / count
    probes.close()

    idle = threading.Event()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    idle.wait(min(5.0, seconds))
    baseline = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0)

    thread_cpu: list[float] = []
    metrics: set[str] = set()

    def emit(values: dict[str, float], _step: int) -> None:
        thread_cpu.append(time.thread_time())  # the sampler thread's CPU so far
        metrics.update(values)

    sampler = SystemSampler(emit, 1.0)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    sampler.start()
    idle.wait(seconds)
    sampler.stop()
    wall = time.perf_counter() - wall0
    process = (cpu_seconds() - cpu0) / wall
    thread = thread_cpu[-1] / wall if thread_cpu else float("nan")
    print(f"sampler at 1 s for {wall:.1f} s ({len(thread_cpu)} samples, {len(metrics)} metrics)")
    print(f"  per sample              {per_sample * 1e6:8.1f} µs")
    print(f"  process CPU, idle       {baseline * 100:8.3f} % of one core")
    print(f"  process CPU, sampling   {process * 100:8.3f} % of one core")
    print(f"  sampler thread CPU      {thread * 100:8.3f} % of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    bench_capture(args.cwd.resolve(), args.repeats)
    bench_run_start(args.cwd.resolve(), args.repeats)
    bench_sampler(args.seconds)
    bench_run_sampler(args.seconds)


if __name__ == "__main__":
    main()
