"""The per-process runtime: one event loop on a daemon thread that hosts every run's actor.

Why a thread of its own (see ``docs/architecture.md``): a user's event loop that is busy
in CPU work, or sync code with no loop at all, must not stop flushing; runs gathered on
any loop, trio or asyncio, share it; a forked child simply starts a new one. It starts
on first use (``import strikes`` starts nothing) and is shut down at interpreter exit,
before ``concurrent.futures`` refuses new work, after flushing every open writer.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import concurrent.futures.thread
import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from strikes.runtime.signals import install_sigterm_handler

if TYPE_CHECKING:
    from strikes.runtime.actor import Actor
    from strikes.sinks.base import Sink

__all__ = ["Runtime", "get_runtime", "shutdown_runtime"]

T = TypeVar("T")
_log = structlog.get_logger("strikes.runtime")

# Exit must not hang forever on a sink that never answers.
EXIT_FLUSH_TIMEOUT_SECONDS = 30.0


class Runtime:
    """An asyncio loop on a daemon thread, with the actors and sinks it hosts."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.actors: set[Actor] = set()
        self._sink_opened: dict[int, asyncio.Future[None]] = {}
        self._sinks: list[Sink] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="strikes-runtime", daemon=True)
        self.thread_id: int | None = None
        self.closed = False

    def start(self) -> None:
        """Start the loop thread and wait until it runs."""
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.thread_id = threading.get_ident()
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the runtime's own thread."""
        return threading.get_ident() == self.thread_id

    # Work handed to the runtime runs in a fresh, empty context, never in the caller's:
    # a caller under trio carries sniffio's "trio" in its context, and anyio calls on the
    # runtime's asyncio loop (worker threads for hashing, provenance) would then fail.

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the runtime loop; returns a thread-safe future."""
        return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, self.loop)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Schedule ``callback`` on the runtime loop from any thread."""
        if self.in_loop_thread():
            self.loop.call_soon(callback, context=contextvars.Context())
        else:
            self.loop.call_soon_threadsafe(callback, context=contextvars.Context())

    async def ensure_open(self, sink: Sink) -> None:
        """Open ``sink`` once, however many actors write to it; raises what ``open`` raised."""
        future = self._sink_opened.get(id(sink))
        if future is None:
            future = self.loop.create_future()
            self._sink_opened[id(sink)] = future
            self._sinks.append(sink)
            try:
                await sink.open()
            except BaseException as exc:
                del self._sink_opened[id(sink)]
                self._sinks.remove(sink)
                future.set_exception(exc)
                future.exception()  # retrieved: the caller gets it raised below
                raise
            future.set_result(None)
        await asyncio.shield(future)

    async def _shutdown(self) -> None:
        for actor in list(self.actors):
            try:
                await actor.close(status_if_open="finished")
            except Exception:
                _log.exception("strikes: a run could not be closed at exit", run_id=actor.run_id)
        for sink in self._sinks:
            try:
                await sink.close()
            except Exception:
                _log.exception("strikes: a sink failed to close", sink=sink.name)

    def shutdown(self, timeout: float = EXIT_FLUSH_TIMEOUT_SECONDS) -> None:
        """Flush and close every actor and sink, then stop the loop thread."""
        if self.closed:
            return
        self.closed = True
        if not self._thread.is_alive():
            return
        future = self.submit(self._shutdown())
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            _log.error(
                "strikes: shutdown timed out; some events may not be flushed", timeout=timeout
            )
        except Exception:
            _log.exception("strikes: shutdown failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()
_hooks_installed = False


def get_runtime() -> Runtime:
    """Return this process's runtime, starting it on first use (and again after a fork)."""
    runtime = _runtime
    if runtime is not None and not runtime.closed:
        return runtime
    return _start_runtime()


def _start_runtime() -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per process is the design
    with _runtime_lock:
        if _runtime is None or _runtime.closed or _runtime.pid != os.getpid():
            _install_hooks()
            runtime = Runtime()
            runtime.start()
            _runtime = runtime
            install_sigterm_handler()  # flushes on SIGTERM; only from the main thread
        return _runtime


def shutdown_runtime() -> None:
    """Flush everything and stop the runtime; the next run starts a new one."""
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is not None and runtime.pid == os.getpid():
        runtime.shutdown()


def _after_fork_in_child() -> None:
    # The parent's loop thread does not exist here: forget it without touching it.
    global _runtime, _runtime_lock  # noqa: PLW0603
    _runtime = None
    _runtime_lock = threading.Lock()


def _install_hooks() -> None:
    global _hooks_installed  # noqa: PLW0603
    if _hooks_installed:
        return
    _hooks_installed = True
    os.register_at_fork(after_in_child=_after_fork_in_child)
    # threading's exit hooks run before concurrent.futures stops taking work (that hook
    # was registered first and runs last), which the file writes still need.
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError  # noqa: TRY301
        register(shutdown_runtime)
    except RuntimeError:
        atexit.register(shutdown_runtime)
