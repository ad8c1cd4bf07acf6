"""The floor: the same events as strikes records, with no library around them.

Each event is a frozen ``msgspec.Struct`` shaped like strikes' (array-like, tagged, no GC
tracking); the producer appends it to a list and, every 1,000 events, encodes the list
once to msgpack and appends it, length-prefixed, to a file. No thread, no context lookup,
no checks: the cheapest a Python recorder writing the same data could be. Runs in the
project's virtualenv (for msgspec) but imports nothing of strikes.

* metrics: one Metric per call
* task: TaskStarted, Input, Output, TaskFinished per call (strikes logs inputs and output);
  with no inputs/outputs recorded, TaskStarted and TaskFinished
* concurrent: one list and one file per run, under asyncio.gather like the others
* eval: TaskStarted, Input, Output, Metric (the score), TaskFinished per sample
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from typing import Any, ClassVar

import _common
import msgspec

BATCH = 1000


class Event(
    msgspec.Struct, frozen=True, array_like=True, gc=False, omit_defaults=True, tag_field="kind"
):
    run_id: str
    span_id: str
    parent_id: str
    seq: int
    ts: int


class Metric(Event, frozen=True, tag="metric"):
    name: str
    value: float
    step: int = 0


class TaskStarted(Event, frozen=True, tag="task_started"):
    name: str
    label: str


class Input(Event, frozen=True, tag="input"):
    name: str
    value: Any = None


class Output(Event, frozen=True, tag="output"):
    name: str
    value: Any = None


class TaskFinished(Event, frozen=True, tag="task_finished"):
    failed: bool = False


RUN = "0" * 32
ROOT = "1" * 16


class Writer:
    """Append events; encode and write every BATCH of them."""

    def __init__(self, path):
        self.handle = path.open("ab")
        self.batch: list[Event] = []
        self.encode = msgspec.msgpack.Encoder().encode
        self.pack = struct.Struct("<I").pack

    def append(self, event):
        batch = self.batch
        batch.append(event)
        if len(batch) >= BATCH:
            self.write()

    def write(self):
        if self.batch:
            data = self.encode(self.batch)
            self.handle.write(self.pack(len(data)) + data)
            self.batch.clear()

    def close(self):
        self.write()
        self.handle.close()


class FloorPeer:
    SUPPORT: ClassVar[dict[str, str]] = {"concurrent": "—"}
    NOTES: ClassVar[dict[str, str]] = {
        "metrics": "Metric Structs appended to a list, msgpack-encoded per 1,000, written",
        "task": "4 Structs per call (started, input, output, finished), same batching",
        "concurrent": "one list + file per run; same awaits as the others",
        "eval": "5 Structs per sample (started, input, output, score, finished); "
        "semaphore(100) + asyncio.gather",
    }

    def version(self):
        return f"msgspec {msgspec.__version__}"

    def setup(self, directory):
        self.directory = directory
        self.files = itertools.count()

    def _writer(self):
        return Writer(self.directory / f"floor-{next(self.files)}.bin")

    def metrics(self, n):
        writer = self._writer()
        append, seq, now = writer.append, itertools.count().__next__, time.time_ns
        t0 = time.perf_counter()
        for i in range(n):
            append(Metric(RUN, ROOT, "", seq(), now(), "loss", 0.5, i))
        t_logged = time.perf_counter()
        writer.close()
        return t0, t_logged, time.perf_counter()

    def task(self, n):
        writer = self._writer()
        append, seq, now = writer.append, itertools.count().__next__, time.time_ns
        ids = itertools.count(1)

        def f(x):
            span = f"{next(ids):016x}"
            append(TaskStarted(RUN, span, ROOT, seq(), now(), "f", "f"))
            append(Input(RUN, span, ROOT, seq(), now(), "x", x))
            out = x
            append(Output(RUN, span, ROOT, seq(), now(), "output", out))
            append(TaskFinished(RUN, span, ROOT, seq(), now()))
            return out

        t0 = time.perf_counter()
        for i in range(n):
            f(i)
        t_called = time.perf_counter()
        writer.close()
        return t0, t_called, time.perf_counter()

    def task_bare(self, n):
        writer = self._writer()
        append, seq, now = writer.append, itertools.count().__next__, time.time_ns
        ids = itertools.count(1)

        def f(x):
            span = f"{next(ids):016x}"
            append(TaskStarted(RUN, span, ROOT, seq(), now(), "f", "f"))
            append(TaskFinished(RUN, span, ROOT, seq(), now()))
            return x

        t0 = time.perf_counter()
        for i in range(n):
            f(i)
        t_called = time.perf_counter()
        writer.close()
        return t0, t_called, time.perf_counter()

    async def concurrent(self, runs, each, every):
        async def one(k):
            writer = self._writer()
            append, seq, now = writer.append, itertools.count().__next__, time.time_ns
            run = f"{k:032x}"
            for i in range(each):
                append(Metric(run, ROOT, "", seq(), now(), "loss", 0.5, i))
                if i % every == every - 1:
                    await asyncio.sleep(0)
            writer.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(runs)))
        return t0, time.perf_counter()

    async def eval(self, n, concurrency):
        writer = self._writer()
        append, seq, now = writer.append, itertools.count().__next__, time.time_ns
        ids = itertools.count(1)
        sample, score = _common.sample, _common.score

        async def one(x):
            span = f"{next(ids):016x}"
            append(TaskStarted(RUN, span, ROOT, seq(), now(), "sample", "sample"))
            append(Input(RUN, span, ROOT, seq(), now(), "x", x))
            out = await sample(x)
            append(Output(RUN, span, ROOT, seq(), now(), "output", out))
            append(Metric(RUN, span, ROOT, seq(), now(), "score", score(out), 0))
            append(TaskFinished(RUN, span, ROOT, seq(), now()))
            return out

        t0 = time.perf_counter()
        await _common.gather_limited(one, range(n), concurrency)
        writer.close()
        return t0, time.perf_counter()


if __name__ == "__main__":
    _common.main(FloorPeer, name="floor")
