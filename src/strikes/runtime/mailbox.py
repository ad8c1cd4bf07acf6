"""The bounded, thread-safe mailbox between producers (logging calls) and a run's actor.

Producers on any thread or event loop append without locking (``deque.append`` is
atomic); only when a batch is due do they wake the actor, once per batch, so the
consumer never fights the producer for the GIL per event. When the mailbox holds more
than ``max_size`` items the backpressure policy decides: ``block`` waits for room,
``drop_newest``/``drop_oldest`` discard a metric and count it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import Generic, Literal, NamedTuple, TypeVar

from strikes.events import Metric

__all__ = ["BACKPRESSURE_POLICIES", "Backpressure", "Mailbox", "MailboxStatistics"]

Backpressure = Literal["block", "drop_newest", "drop_oldest"]
BACKPRESSURE_POLICIES: tuple[Backpressure, ...] = ("block", "drop_newest", "drop_oldest")

# A blocked producer re-checks this often, so a lost wake-up only costs latency.
_BLOCK_POLL_SECONDS = 0.05

T = TypeVar("T")


class MailboxStatistics(NamedTuple):
    """Numbers a user can inspect about one mailbox."""

    queued: int
    """Items waiting for the actor right now."""
    max_size: int
    """Items the mailbox holds before backpressure applies."""
    batch_size: int
    """Items that make a batch due (the actor is woken then)."""
    dropped: int
    """Metrics discarded by a ``drop_*`` policy since the mailbox was made."""
    blocked: int
    """Times a producer had to wait for room under the ``block`` policy."""


class Mailbox(Generic[T]):
    """A bounded multi-producer, single-consumer queue with explicit backpressure."""

    __slots__ = (
        "_blocked",
        "_cond",
        "_consumer_thread",
        "_dropped",
        "_items",
        "_max_size",
        "_policy",
        "_threshold",
        "_waiters",
        "_wake",
        "batch_size",
        "closed",
        "wake_pending",
    )

    def __init__(
        self,
        *,
        batch_size: int,
        max_size: int,
        policy: Backpressure,
        wake: Callable[[], None],
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_size < batch_size:
            raise ValueError(f"mailbox_size ({max_size}) must be >= batch_size ({batch_size})")
        if policy not in BACKPRESSURE_POLICIES:
            raise ValueError(f"backpressure must be one of {BACKPRESSURE_POLICIES}, got {policy!r}")
        self._items: deque[T] = deque()
        self.batch_size = batch_size
        self._max_size = max_size
        self._policy = policy
        self._wake = wake
        self._threshold = batch_size
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0
        self._dropped = 0
        self._blocked = 0
        self._consumer_thread: int | None = None
        self.wake_pending = False
        self.closed = False

    # -- producer side -------------------------------------------------------------

    def put(self, item: T) -> None:
        """Add ``item``; wakes the actor when a batch is due, applies backpressure when full."""
        items = self._items
        items.append(item)
        if len(items) >= self._threshold:
            self._overflow()

    def _overflow(self) -> None:
        if not self.wake_pending:
            self.wake_pending = True
            self._wake()
        items = self._items
        if len(items) <= self._max_size:
            return
        if self._policy == "block":
            self._block()
        elif self._policy == "drop_newest":
            self._drop(items.pop, items.append)
        else:
            self._drop(items.popleft, items.appendleft)

    def _drop(self, take: Callable[[], T], give_back: Callable[[T], None]) -> None:
        # Only metrics are ever dropped: run/task boundaries, params and values are few
        # and losing one would corrupt the record, so they always get in.
        try:
            victim = take()
        except IndexError:  # the actor drained everything meanwhile
            return
        if type(victim) is Metric:
            self._dropped += 1
        else:
            give_back(victim)

    def _block(self) -> None:
        if threading.get_ident() == self._consumer_thread or self.closed:
            return  # the actor's own thread must never wait on itself
        self._blocked += 1
        with self._cond:
            self._waiters += 1
            try:
                while len(self._items) > self._max_size and not self.closed:
                    if not self.wake_pending:
                        self.wake_pending = True
                        self._wake()
                    self._cond.wait(_BLOCK_POLL_SECONDS)
            finally:
                self._waiters -= 1

    # -- consumer side -------------------------------------------------------------

    def bind_consumer(self) -> None:
        """Record the consumer's thread: producers on it never block."""
        self._consumer_thread = threading.get_ident()

    def drain(self, limit: int) -> list[T]:
        """Take up to ``limit`` items, oldest first, and let blocked producers go on."""
        self.wake_pending = False
        items = self._items
        count = min(len(items), limit)
        popleft = items.popleft
        if self._policy != "drop_oldest":
            # only this consumer pops: `count` items are surely there
            taken = [popleft() for _ in repeat(None, count)]
        else:  # producers pop too: stop at empty rather than lose what was taken
            taken = []
            append = taken.append
            for _ in repeat(None, count):
                try:
                    append(popleft())
                except IndexError:
                    break
        if self._waiters:
            with self._cond:
                self._cond.notify_all()
        return taken

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """Stop blocking producers; later puts still land and are drained by the closer."""
        self.closed = True
        with self._cond:
            self._cond.notify_all()

    def statistics(self) -> MailboxStatistics:
        """Return the current :class:`MailboxStatistics`."""
        return MailboxStatistics(
            queued=len(self._items),
            max_size=self._max_size,
            batch_size=self.batch_size,
            dropped=self._dropped,
            blocked=self._blocked,
        )
