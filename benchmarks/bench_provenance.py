"""Provenance capture at run start, and the system sampler's own CPU cost.

    python benchmarks/bench_provenance.py [--repeats 20] [--seconds 30] [--cwd DIR]

Figures, medians of the repeats, printed without any pass/fail:

* cold capture - the first `capture_provenance` in a fresh interpreter (package list
  scanned, platform read), module import excluded, in a new process per repeat
* warm capture - later captures in one process (the package list cached), with a
  breakdown by part; git runs in `--cwd` (default: the current directory), and a dirty
  tree costs one more `git diff`
* sampler CPU - process CPU time over wall time while a `SystemSampler` samples every
  second and the main thread waits; the sampler thread's own CPU time (read in `emit`)
  gives the same figure without the interpreter's background noise
* per sample - the cost of one psutil (and NVML, if present) sample, taken directly
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

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
    bench_sampler(args.seconds)


if __name__ == "__main__":
    main()
