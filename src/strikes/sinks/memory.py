"""An in-memory sink for tests: every batch and event, as the runtime delivered them."""

from __future__ import annotations

from typing import TypeVar

from strikes.events import Event, Metric
from strikes.sinks.base import Batch, Sink

__all__ = ["MemorySink"]

E = TypeVar("E", bound=Event)


class MemorySink(Sink):
    """Keeps every batch, event and blob in memory; ``flushes`` counts ``flush()`` calls."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.events: list[Event] = []
        self.blobs: dict[str, bytes | str | None] = {}
        self.flushes = 0
        self.opened = False
        self.closed = False

    async def open(self) -> None:
        """Mark the sink open."""
        self.opened = True

    async def write(self, batch: Batch) -> None:
        """Keep the batch."""
        self.batches.append(batch)
        self.events.extend(batch.events)
        for blob in batch.blobs:
            self.blobs[blob.hash] = blob.data if blob.data is not None else blob.source

    async def flush(self) -> None:
        """Count the flush."""
        self.flushes += 1

    async def close(self) -> None:
        """Mark the sink closed."""
        self.closed = True

    def of_type(self, kind: type[E], run_id: str | None = None) -> list[E]:
        """Events of one kind, optionally of one run, in delivery order."""
        return [
            event
            for event in self.events
            if type(event) is kind and (run_id is None or event.run_id == run_id)
        ]

    def metrics(self, run_id: str | None = None) -> dict[str, list[float]]:
        """Metric values by name, in delivery order."""
        found: dict[str, list[float]] = {}
        for metric in self.of_type(Metric, run_id):
            found.setdefault(metric.name, []).append(metric.value)
        return found

    def clear(self) -> None:
        """Forget everything received so far."""
        self.batches.clear()
        self.events.clear()
        self.blobs.clear()
