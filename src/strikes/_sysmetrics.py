"""System metrics: process, machine and GPU usage sampled on a daemon thread.

Each sample is a dict of floats handed to ``emit(values, step)``; the names, all under
``sys.``, are:

``sys.cpu.process_percent``
    CPU used by this process since the last sample, in percent of one core (a process
    busy on four cores reads 400).
``sys.cpu.machine_percent``
    CPU used by the whole machine since the last sample, in percent of all cores (0-100).
``sys.memory.rss_bytes``
    This process's resident set size.
``sys.memory.machine_percent``
    Memory in use on the machine, in percent of the total (psutil's ``virtual_memory``).
``sys.disk.read_bytes``, ``sys.disk.write_bytes``
    Bytes read from and written to the machine's disks since the sampler started.
``sys.network.sent_bytes``, ``sys.network.recv_bytes``
    Bytes sent and received on the machine's interfaces since the sampler started.
``sys.gpu.<index>.utilization_percent``
    Percent of the last sample period during which a kernel ran on GPU ``index``.
``sys.gpu.<index>.memory_used_bytes``, ``sys.gpu.<index>.memory_percent``
    GPU memory in use, in bytes and in percent of the GPU's total.

Counters are cumulative from the sampler's start so a missed sample loses nothing; the
slope of the chart is the rate. A reading the machine cannot give (no disk counters in
some containers, a GPU field not supported) is left out of the sample, not zeroed.

``psutil`` is the optional extra ``strikes[system]``; GPU metrics need NVIDIA's NVML
bindings (``pip install nvidia-ml-py``) and a GPU, and are skipped cleanly without them.
"""

from __future__ import annotations

import contextvars
import importlib
import math
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["SystemSampler"]

Emit = Callable[[dict[str, float], int], None]

_MISSING_PSUTIL = (
    "system metrics need psutil: install the extra with `pip install 'strikes[system]'`"
)


def _import_psutil() -> ModuleType:
    try:
        return importlib.import_module("psutil")
    except ImportError as error:
        raise ImportError(_MISSING_PSUTIL, name="psutil") from error


def _import_nvml() -> ModuleType | None:
    # The legacy `pynvml` wrapper warns on import; ours is an optional probe, not the user's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module("pynvml")
        except Exception:
            return None


def _put(values: dict[str, float], name: str, read: Callable[[], float | None]) -> None:
    # A reading the machine cannot give is left out of the sample, never zeroed.
    try:
        value = read()
    except Exception:
        return
    if value is not None:
        values[name] = float(value)


def _call(function: Callable[[], Any]) -> Any:
    # For probes whose failure only means "not available here".
    try:
        return function()
    except Exception:
        return None


class _MachineCpu:
    """Machine CPU percent between calls, from our own baseline.

    ``psutil.cpu_percent(None)`` keeps its baseline in a module global, so it would share
    it with (and skew) any user code calling it too.
    """

    def __init__(self, psutil: ModuleType) -> None:
        self._psutil = psutil
        self._last = self._busy_total()

    def _busy_total(self) -> tuple[float, float]:
        times = self._psutil.cpu_times()
        total = float(sum(times))
        # On Linux guest time is already counted in user time; psutil subtracts it too.
        total -= float(getattr(times, "guest", 0.0)) + float(getattr(times, "guest_nice", 0.0))
        idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
        return total - idle, total

    def percent(self) -> float | None:
        busy, total = self._busy_total()
        last_busy, last_total = self._last
        self._last = (busy, total)
        if total <= last_total:
            return None
        return min(100.0, max(0.0, (busy - last_busy) / (total - last_total) * 100.0))


def _sample_gpu(nvml: ModuleType, handle: Any, prefix: str, values: dict[str, float]) -> None:
    _put(
        values,
        prefix + "utilization_percent",
        lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
    )
    memory = _call(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    if memory is not None:
        _put(values, prefix + "memory_used_bytes", lambda: memory.used)
        _put(values, prefix + "memory_percent", lambda: memory.used / memory.total * 100.0)


class _Gpus:
    """NVML handles for every GPU, or none when NVML or a GPU is missing."""

    def __init__(self, nvml: ModuleType | None) -> None:
        self._nvml = nvml
        self._handles: list[Any] = []
        if nvml is None:
            return
        try:
            nvml.nvmlInit()
        except Exception:  # no driver, no library: no GPU metrics, and no error
            self._nvml = None
            return
        try:
            self._handles = [
                nvml.nvmlDeviceGetHandleByIndex(index) for index in range(nvml.nvmlDeviceGetCount())
            ]
        except Exception:
            self._handles = []

    def sample(self, values: dict[str, float]) -> None:
        nvml = self._nvml
        if nvml is None:
            return
        for index, handle in enumerate(self._handles):
            _sample_gpu(nvml, handle, f"sys.gpu.{index}.", values)

    def close(self) -> None:
        if self._nvml is not None:
            _call(self._nvml.nvmlShutdown)
            self._nvml = None


class _Probes:
    """One sampler thread's view of the machine: psutil objects and counter baselines."""

    def __init__(self, psutil: ModuleType, nvml: ModuleType | None) -> None:
        self._psutil = psutil
        self._process = psutil.Process()
        # The first cpu_percent() call only sets the baseline; the first sample is real.
        self._process.cpu_percent(None)
        self._machine_cpu = _MachineCpu(psutil)
        self._disk0 = self._disk()
        self._network0 = self._network()
        self._gpus = _Gpus(nvml)

    def _disk(self) -> tuple[float, float] | None:
        counters = _call(self._psutil.disk_io_counters)
        if counters is None:  # containers without /proc/diskstats
            return None
        return float(counters.read_bytes), float(counters.write_bytes)

    def _network(self) -> tuple[float, float] | None:
        counters = _call(self._psutil.net_io_counters)
        if counters is None:
            return None
        return float(counters.bytes_sent), float(counters.bytes_recv)

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        process = self._process
        with process.oneshot():  # one read of /proc/self for both fields
            _put(values, "sys.cpu.process_percent", lambda: process.cpu_percent(None))
            _put(values, "sys.memory.rss_bytes", lambda: process.memory_info().rss)
        _put(values, "sys.cpu.machine_percent", self._machine_cpu.percent)
        _put(values, "sys.memory.machine_percent", lambda: self._psutil.virtual_memory().percent)
        disk = self._disk()
        if disk is not None and self._disk0 is not None:
            values["sys.disk.read_bytes"] = max(0.0, disk[0] - self._disk0[0])
            values["sys.disk.write_bytes"] = max(0.0, disk[1] - self._disk0[1])
        network = self._network()
        if network is not None and self._network0 is not None:
            values["sys.network.sent_bytes"] = max(0.0, network[0] - self._network0[0])
            values["sys.network.recv_bytes"] = max(0.0, network[1] - self._network0[1])
        self._gpus.sample(values)
        return values

    def close(self) -> None:
        self._gpus.close()


class SystemSampler:
    """Samples system metrics every ``interval`` seconds on a daemon thread and calls ``emit``.

    ``emit(values, step)`` runs on the sampler's thread, in a copy of the context that
    called :meth:`start` (so a run bound to a context variable is current there), once
    per sample with ``step`` counting up from 0. An exception from ``emit`` is counted in
    :attr:`errors` and sampling goes on. Raises ``ValueError`` when ``interval`` is not
    a positive finite number and ``TypeError`` when ``emit`` is not callable.
    """

    def __init__(self, emit: Emit, interval: float = 1.0) -> None:
        if not callable(emit):
            raise TypeError(f"emit must be callable, got {type(emit).__qualname__}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"interval must be a number, got {type(interval).__qualname__}")
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self._emit = emit
        self._interval = float(interval)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._step = 0
        self._errors = 0

    @property
    def interval(self) -> float:
        """Seconds between samples."""
        return self._interval

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def errors(self) -> int:
        """How many samples ``emit`` raised on (or failed to take) since construction."""
        return self._errors

    def start(self) -> None:
        """Start sampling; does nothing when already running.

        Raises ``ImportError`` naming the ``strikes[system]`` extra when psutil is missing.
        """
        with self._lock:
            if self.running:
                return
            psutil = _import_psutil()
            nvml = _import_nvml()
            # A fresh event per thread: a previous thread that outlived its join still
            # sees its own event set, and exits.
            self._stopping = stopping = threading.Event()
            context = contextvars.copy_context()
            self._thread = threading.Thread(
                target=context.run,
                args=(self._loop, psutil, nvml, stopping),
                name="strikes-system-metrics",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait up to about one interval for the thread; idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            # Event.wait wakes at once on stop; only a sample or an emit in progress delays.
            thread.join(timeout=max(self._interval, 1.0))

    def _loop(self, psutil: ModuleType, nvml: ModuleType | None, stopping: threading.Event) -> None:
        try:
            probes = _Probes(psutil, nvml)
        except Exception:  # psutil cannot read this process: nothing to sample
            self._errors += 1
            return
        try:
            while not stopping.wait(self._interval):
                try:
                    values = probes.sample()
                    step = self._step
                    self._step += 1
                    self._emit(values, step)
                except Exception:
                    self._errors += 1
        finally:
            probes.close()
