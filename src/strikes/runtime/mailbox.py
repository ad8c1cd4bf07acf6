"""The bounded, thread-safe mailbox between producers (logging calls) and a run's actor.

Producers on any thread or event loop append without locking (``deque.append`` is
atomic); only when a batch is due do they wake the actor, once per batch, so the
consumer never fights the producer for the GIL per event. When the mailbox holds more
than ``max_size`` items the backpressure policy decides: ``block`` waits for room,
``drop_newest``/``drop_oldest`` discard a metric and count it.

Bounds: every producer appends one item and only then looks at the size, so the mailbox
never holds more than ``max_size`` plus one item per producer thread that is putting at
that moment. Only a put of a metric ever causes a drop, so the structural events (run
and task boundaries, params, values) always get in and a run's final ``stats`` are exact.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from strikes.events import Metric

__all__ = ["BACKPRESSURE_POLICIES", "Backpressure", "Mailbox", "MailboxStatistics"]

Backpressure = Literal["block", "drop_newest", "drop_oldest"]
BACKPRESSURE_POLICIES: tuple[Backpressure, ...] = ("block", "drop_newest", "drop_oldest")

# A blocked producer re-checks this often, so a lost wake-up only costs latency.
_BLOCK_POLL_SECONDS = 0.05
# A metric that drop_oldest may discard is looked for among this many oldest items; the
# few structural events ahead of it are kept (the actor drains them first anyway).
_DROP_SCAN = 64

T = TypeVar("T")

# Appended by close(): what lies right of it was put late, and only that may be discarded.
_CLOSED_MARK: Any = object()


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
    high_water: int
    """The most items seen queued when backpressure was applied."""
    late: int
    """Items put after the mailbox was closed and discarded past ``max_size``."""


class Mailbox(Generic[T]):
    """A bounded multi-producer, single-consumer queue with explicit backpressure.

    ``on_first_drop`` is called once, on the producer's thread, when the first metric is
    dropped (the actor logs it: dropping is never silent).
    """

    __slots__ = (
        "_blocked",
        "_cond",
        "_consumer_thread",
        "_dropped",
        "_high_water",
        "_items",
        "_late",
        "_max_size",
        "_on_first_drop",
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
        on_first_drop: Callable[[], None] | None = None,
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
        self._on_first_drop = on_first_drop
        self._threshold = batch_size
        # One lock for waiting producers and, under the drop policies, for every pop:
        # producers then pop too, and two pops must not race for the last items.
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0
        self._dropped = 0
        self._blocked = 0
        self._high_water = 0
        self._late = 0
        self._consumer_thread: int | None = None
        self.wake_pending = False
        self.closed = False

    # -- producer side -------------------------------------------------------------

    def put(self, item: T) -> None:
        """Add ``item``; wakes the actor when a batch is due, applies backpressure when full."""
        items = self._items
        items.append(item)
        if len(items) >= self._threshold:
            self._overflow(item)

    def _overflow(self, item: T) -> None:
        if not self.wake_pending:
            self.wake_pending = True
            self._wake()
        size = len(self._items)
        if size <= self._max_size:
            return
        if self.closed:
            self._discard_late()
            return
        self._high_water = max(self._high_water, size)
        if self._policy == "block":
            self._block()
        elif type(item) is Metric:  # only a metric's put may cost a metric
            self._drop()

    def _discard_late(self) -> None:
        # Nobody drains a closed mailbox past its final delivery: a producer still
        # logging into a closed run (another thread, or after SIGTERM) must not grow it.
        items = self._items
        with self._cond:
            while len(items) > self._max_size and items[-1] is not _CLOSED_MARK:
                items.pop()
                self._late += 1

    def _drop(self) -> None:
        items = self._items
        with self._cond:
            if len(items) <= self._max_size:  # the actor drained meanwhile
                return
            if self._policy == "drop_newest":
                # Structural events other producers appended just now are kept (put back
                # in order); the newest metric behind them goes.
                kept: list[T] = []
                found = False
                while items and len(kept) < _DROP_SCAN:
                    victim = items.pop()
                    if type(victim) is Metric:
                        found = True
                        break
                    kept.append(victim)
                items.extend(reversed(kept))
                if not found:
                    return
            else:
                # Producers only append at the right, so indexes from the left are stable
                # while we hold the lock (the consumer pops under it too).
                for index in range(min(_DROP_SCAN, len(items))):
                    if type(items[index]) is Metric:
                        del items[index]
                        break
                else:
                    return  # no metric near the front: keep everything, bounded by _DROP_SCAN
            self._dropped += 1
            first = self._dropped == 1
        if first and self._on_first_drop is not None:
            self._on_first_drop()

    def _block(self) -> None:
        if threading.get_ident() == self._consumer_thread or self.closed:
            return  # the actor's own thread must never wait on itself
        self._blocked += 1
        self._wait(lambda: len(self._items) <= self._max_size, None)

    def _wait(self, done: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            try:
                while not done():
                    if self.closed:
                        return False
                    if not self.wake_pending:
                        self.wake_pending = True
                        self._wake()
                    wait = _BLOCK_POLL_SECONDS
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        wait = min(wait, left)
                    self._cond.wait(wait)
                return True
            finally:
                self._waiters -= 1

    def wait_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``done()`` is true, woken on each drain; ``False`` on timeout or close.

        For other bounds the consumer lifts (pending bytes, say). Returns ``done()`` at
        once on the consumer's thread (it must never wait on itself).
        """
        if threading.get_ident() == self._consumer_thread or done():
            return done()
        return self._wait(done, timeout)

    def notify_waiters(self) -> None:
        """Wake every waiting producer to re-check its condition."""
        if self._waiters:
            with self._cond:
                self._cond.notify_all()

    def has_room(self) -> bool:
        """Whether a put now would not meet backpressure."""
        return len(self._items) < self._max_size

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block until a put would not meet backpressure; ``False`` on timeout or close.

        Returns at once on the consumer's thread (it must never wait on itself).
        """
        return self.wait_until(self.has_room, timeout)

    # -- consumer side -------------------------------------------------------------

    def bind_consumer(self) -> None:
        """Record the consumer's thread: producers on it never block."""
        self._consumer_thread = threading.get_ident()

    def drain(self, limit: int) -> list[T]:
        """Take up to ``limit`` items, oldest first, and let blocked producers go on."""
        self.wake_pending = False
        items = self._items
        popleft = items.popleft
        if self._policy == "block" and not self.closed:
            # only this consumer pops: `count` items are surely there (once closed, late
            # producers pop too; close() runs on this consumer's thread, so no race here)
            taken = [popleft() for _ in repeat(None, min(len(items), limit))]
        else:  # producers pop too, under the lock
            with self._cond:
                taken = [popleft() for _ in repeat(None, min(len(items), limit))]
            if self.closed:
                taken = [item for item in taken if item is not _CLOSED_MARK]
        self.notify_waiters()
        return taken

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """Stop blocking producers; later puts beyond ``max_size`` are counted as ``late``.

        Puts after the close still land (the closer drains them) up to ``max_size``.
        """
        with self._cond:
            if self.closed:
                return
            self._items.append(_CLOSED_MARK)
            self.closed = True
            self._cond.notify_all()

    def statistics(self) -> MailboxStatistics:
        """Return the current :class:`MailboxStatistics`."""
        return MailboxStatistics(
            queued=len(self._items),
            max_size=self._max_size,
            batch_size=self.batch_size,
            dropped=self._dropped,
            blocked=self._blocked,
            high_water=self._high_water,
            late=self._late,
        )
