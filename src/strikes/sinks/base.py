"""The sink protocol: where batches of events go."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TYPE_CHECKING, Self

from strikes.events import Blob, Event, encode_events

if TYPE_CHECKING:
    from strikes.runtime.state import RunState

__all__ = ["Batch", "Sink"]


class Batch:
    """Events of one run from one writer, handed to every sink as they are.

    ``encoded`` is the msgpack encoding of ``events``, computed at most once and
    shared by every sink that wants bytes.
    """

    __slots__ = ("_encoded", "blobs", "events", "final", "run_id", "state", "writer_id")

    def __init__(
        self,
        *,
        run_id: str,
        writer_id: str,
        events: list[Event],
        blobs: list[Blob],
        state: RunState,
        final: bool = False,
    ) -> None:
        self.run_id = run_id
        self.writer_id = writer_id
        self.events = events
        self.blobs = blobs
        self.state = state
        self.final = final
        self._encoded: bytes | None = None

    @property
    def encoded(self) -> bytes:
        """The events as one msgpack array (encoded on first use, then cached)."""
        if self._encoded is None:
            self._encoded = encode_events(self.events)
        return self._encoded

    def __repr__(self) -> str:
        return (
            f"Batch(run_id={self.run_id!r}, writer_id={self.writer_id!r}, "
            f"events={len(self.events)}, blobs={len(self.blobs)}, final={self.final})"
        )


class Sink(abc.ABC):
    """A destination for batches: subclass it and implement :meth:`write`.

    The runtime calls ``open()`` once before the first batch, ``write()`` for each
    batch (from one event loop, never concurrently for the same run), ``flush()`` when a
    run ends or ``push_update()`` is called, ``heartbeat()`` while a run is open but
    silent, and ``close()`` once at shutdown. A sink
    that raises is retried with backoff; it never stops other sinks or the user's code.
    """

    @property
    def name(self) -> str:
        """A short name for logs and errors."""
        return type(self).__name__

    async def open(self) -> None:  # noqa: B027 - a no-op default is the point
        """Prepare to receive batches."""

    @abc.abstractmethod
    async def write(self, batch: Batch) -> None:
        """Take one batch; return once it is as durable as this sink makes things."""

    async def flush(self) -> None:  # noqa: B027
        """Make everything written so far visible to readers."""

    async def heartbeat(self, state: RunState) -> None:  # noqa: B027
        """The run's owner is alive although it logged nothing lately (``state.last_seen``).

        Called every ``heartbeat_interval`` of silence while a run is open, by the process
        that opened it, between batches. Best effort: an error is logged, never retried.
        """

    async def close(self) -> None:  # noqa: B027
        """Release resources; no ``write`` follows."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
