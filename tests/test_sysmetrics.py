"""System metrics sampler: keys, steps, stopping, optional psutil and GPU."""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from strikes._sysmetrics import SystemSampler

PSUTIL_KEYS = {
    "sys.cpu.process_percent",
    "sys.cpu.machine_percent",
    "sys.memory.rss_bytes",
    "sys.memory.machine_percent",
}
# Disk and network counters are absent in some containers, so only checked when present.
COUNTER_KEYS = {
    "sys.disk.read_bytes",
    "sys.disk.write_bytes",
    "sys.network.sent_bytes",
    "sys.network.recv_bytes",
}
WAIT = 30.0  # seconds a queue read may block before the test fails; never slept


class Collector:
    """An ``emit`` that queues every sample, for tests to await."""

    def __init__(self) -> None:
        self.samples: queue.Queue[tuple[int, dict[str, float]]] = queue.Queue()

    def __call__(self, values: dict[str, float], step: int) -> None:
        self.samples.put((step, values))

    def take(self, count: int) -> list[tuple[int, dict[str, float]]]:
        return [self.samples.get(timeout=WAIT) for _ in range(count)]


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def sampler(collector: Collector) -> Iterator[SystemSampler]:
    """A fast sampler, stopped after the test whatever happens."""
    pytest.importorskip("psutil")
    sampler = SystemSampler(collector, interval=0.01)
    yield sampler
    sampler.stop()


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML bindings cannot be imported."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


def fake_nvml(monkeypatch: pytest.MonkeyPatch, *, devices: int, init_fails: bool = False) -> Any:
    """Install a stand-in ``pynvml`` with ``devices`` GPUs, 25% busy, 1 of 4 GiB used."""
    module: Any = types.ModuleType("pynvml")
    module.shutdowns = 0

    def init() -> None:
        if init_fails:
            raise RuntimeError("NVML Shared Library Not Found")

    def shutdown() -> None:
        module.shutdowns += 1

    module.nvmlInit = init
    module.nvmlShutdown = shutdown
    module.nvmlDeviceGetCount = lambda: devices
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetUtilizationRates = lambda _handle: types.SimpleNamespace(gpu=25)
    module.nvmlDeviceGetMemoryInfo = lambda _handle: types.SimpleNamespace(
        used=2**30, total=4 * 2**30
    )
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


class TestArguments:
    """The constructor checks its arguments."""

    @pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf")])
    def test_bad_interval(self, interval: float) -> None:
        """A non-positive or non-finite interval is a ValueError."""
        with pytest.raises(ValueError, match="interval"):
            SystemSampler(lambda _values, _step: None, interval=interval)

    def test_interval_type(self) -> None:
        """A non-number interval is a TypeError."""
        with pytest.raises(TypeError, match="interval"):
            SystemSampler(lambda _values, _step: None, interval="1")  # type: ignore[arg-type]

    def test_emit_callable(self) -> None:
        """A non-callable emit is a TypeError."""
        with pytest.raises(TypeError, match="emit"):
            SystemSampler(None)  # type: ignore[arg-type]

    def test_without_psutil(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without psutil, start() raises an ImportError naming the extra."""
        monkeypatch.setitem(sys.modules, "psutil", None)
        sampler = SystemSampler(lambda _values, _step: None)
        with pytest.raises(ImportError, match=r"strikes\[system\]"):
            sampler.start()
        assert not sampler.running


@pytest.mark.usefixtures("no_gpu")
class TestSampling:
    """What each sample holds and how samples are numbered."""

    def test_expected_keys_and_increasing_steps(
        self, sampler: SystemSampler, collector: Collector
    ) -> None:
        """Every sample has the psutil metrics, under sys., with steps 0, 1, 2..."""
        sampler.start()
        samples = collector.take(3)
        assert [step for step, _ in samples] == [0, 1, 2]
        for _, values in samples:
            assert values.keys() >= PSUTIL_KEYS
            assert values.keys() <= PSUTIL_KEYS | COUNTER_KEYS
            assert all(isinstance(value, float) for value in values.values())
            assert values["sys.memory.rss_bytes"] > 0
            assert 0 <= values["sys.cpu.machine_percent"] <= 100
            assert 0 <= values["sys.memory.machine_percent"] <= 100
            assert all(values[key] >= 0 for key in values.keys() & COUNTER_KEYS)

    def test_restart_continues_steps(self, sampler: SystemSampler, collector: Collector) -> None:
        """Stopping and starting again goes on from the next step, never repeating one."""
        sampler.start()
        collector.take(2)
        sampler.stop()
        while not collector.samples.empty():
            collector.samples.get_nowait()
        sampler.start()
        step, _ = collector.take(1)[0]
        assert step >= 2

    def test_emit_errors_are_counted(self, collector: Collector) -> None:
        """An emit that raises is counted and sampling goes on."""
        pytest.importorskip("psutil")
        calls = Collector()

        def flaky(values: dict[str, float], step: int) -> None:
            calls(values, step)
            if step == 0:
                raise RuntimeError("sink closed")

        sampler = SystemSampler(flaky, interval=0.01)
        sampler.start()
        try:
            assert [step for step, _ in calls.take(2)] == [0, 1]
        finally:
            sampler.stop()
        assert sampler.errors == 1

    def test_emit_runs_in_the_starting_context(self) -> None:
        """emit sees the context variables set where start() was called."""
        pytest.importorskip("psutil")
        current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="none")
        seen: queue.Queue[str] = queue.Queue()
        sampler = SystemSampler(lambda _values, _step: seen.put(current.get()), interval=0.01)
        token = current.set("run-1")
        try:
            sampler.start()
        finally:
            current.reset(token)
        try:
            assert seen.get(timeout=WAIT) == "run-1"
        finally:
            sampler.stop()


@pytest.mark.usefixtures("no_gpu")
class TestLifecycle:
    """start and stop are idempotent and stop is prompt."""

    @pytest.mark.timeout(60)
    def test_stop_is_prompt_with_a_long_interval(self, collector: Collector) -> None:
        """stop() wakes the thread at once instead of waiting out an hour-long interval."""
        pytest.importorskip("psutil")
        sampler = SystemSampler(collector, interval=3600)
        sampler.start()
        assert sampler.running
        sampler.stop()
        assert not sampler.running
        assert collector.samples.empty()

    def test_stop_is_idempotent(self, sampler: SystemSampler) -> None:
        """stop() before start() and twice after it does nothing."""
        sampler.stop()
        sampler.start()
        sampler.stop()
        sampler.stop()
        assert not sampler.running

    def test_start_is_idempotent(self, sampler: SystemSampler) -> None:
        """A second start() while running starts no second thread."""
        sampler.start()
        sampler.start()
        threads = [t for t in threading.enumerate() if t.name == "strikes-system-metrics"]
        assert len(threads) == 1
        assert threads[0].daemon

    def test_no_emit_after_stop(self, sampler: SystemSampler, collector: Collector) -> None:
        """Once stop() returns, emit is not called again."""
        sampler.start()
        collector.take(1)
        sampler.stop()
        taken = collector.samples.qsize()
        assert not sampler.running
        assert collector.samples.qsize() == taken


class TestGpu:
    """GPU metrics through NVML, skipped cleanly without it."""

    @pytest.mark.usefixtures("no_gpu")
    def test_skipped_without_nvml(self, sampler: SystemSampler, collector: Collector) -> None:
        """Without NVML bindings samples carry no sys.gpu key and nothing fails."""
        sampler.start()
        ((_, values),) = collector.take(1)
        assert not [key for key in values if key.startswith("sys.gpu.")]
        assert sampler.errors == 0

    def test_skipped_without_driver(
        self, sampler: SystemSampler, collector: Collector, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When NVML cannot initialise (no driver) samples carry no sys.gpu key."""
        fake_nvml(monkeypatch, devices=1, init_fails=True)
        sampler.start()
        ((_, values),) = collector.take(1)
        assert not [key for key in values if key.startswith("sys.gpu.")]
        assert sampler.errors == 0

    def test_skipped_without_devices(
        self, sampler: SystemSampler, collector: Collector, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With NVML but no GPU samples carry no sys.gpu key."""
        fake_nvml(monkeypatch, devices=0)
        sampler.start()
        ((_, values),) = collector.take(1)
        assert not [key for key in values if key.startswith("sys.gpu.")]

    def test_per_gpu_metrics(
        self, sampler: SystemSampler, collector: Collector, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each GPU reports utilisation and memory under sys.gpu.<index>; NVML is shut down."""
        nvml = fake_nvml(monkeypatch, devices=2)
        sampler.start()
        ((_, values),) = collector.take(1)
        for index in (0, 1):
            assert values[f"sys.gpu.{index}.utilization_percent"] == 25.0
            assert values[f"sys.gpu.{index}.memory_used_bytes"] == float(2**30)
            assert values[f"sys.gpu.{index}.memory_percent"] == 25.0
        sampler.stop()
        assert nvml.shutdowns == 1

    def test_unsupported_field_left_out(
        self, sampler: SystemSampler, collector: Collector, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A GPU field NVML does not support is left out; the others remain."""
        nvml = fake_nvml(monkeypatch, devices=1)

        def unsupported(_handle: int) -> None:
            raise RuntimeError("Not Supported")

        nvml.nvmlDeviceGetUtilizationRates = unsupported
        sampler.start()
        ((_, values),) = collector.take(1)
        assert "sys.gpu.0.utilization_percent" not in values
        assert values["sys.gpu.0.memory_used_bytes"] == float(2**30)
