"""SIGTERM: flush every open run, then let the process die of the signal as it would have.

Installed when the runtime starts on the main thread (signal handlers can only be set
there), and only when SIGTERM still has its default disposition or a Python handler: an
ignored SIGTERM stays ignored. A handler found in place is chained: it is called after
the flush is requested, and it decides what happens next.

The flush does not run inside the handler: a handler runs on the main thread between two
bytecodes, possibly while that thread holds a lock the runtime needs (a producer waiting
for room). A helper thread flushes instead and marks the runs left open as failed
("terminated by SIGTERM"), then signals the process again; the handler, seeing the flush
done, restores the default disposition and re-raises SIGTERM, so the process dies of it
(exit status -15 to its parent). Should the main thread never run Python code again, the
helper exits the process with status 143 (128 + SIGTERM) after a grace period.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TERMINATED_ERROR", "install_sigterm_handler"]

TERMINATED_ERROR = "terminated by SIGTERM"
"""The error recorded on runs still open when SIGTERM arrived."""

_log = structlog.get_logger("strikes.runtime")
_installed_pid: int | None = None
_previous: Callable[[int, FrameType | None], object] | int | None = None
_terminating = threading.Lock()
_flushed = threading.Event()
# How long the main thread has to run the handler again once the flush is done.
_GRACE_SECONDS = 5.0


def install_sigterm_handler() -> bool:
    """Install the flushing SIGTERM handler once per process; ``True`` if it is installed."""
    global _installed_pid, _previous  # noqa: PLW0603 - one handler per process
    if _installed_pid == os.getpid():
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):  # pragma: no cover - platforms without SIGTERM
        return False
    if current is _handle:  # inherited through fork: already ours
        _installed_pid = os.getpid()
        return True
    if current in (signal.SIG_IGN, None):  # ignored on purpose, or set outside Python
        return False
    _previous = current
    signal.signal(signal.SIGTERM, _handle)
    _installed_pid = os.getpid()
    return True


def _flush_all(error: str) -> None:
    from strikes.runtime import loop  # noqa: PLC0415 - loop imports this module

    runtime = loop._runtime  # the live runtime, without starting one
    if runtime is None or runtime.closed or runtime.pid != os.getpid():
        return
    futures = [
        runtime.submit(actor.close(status_if_open="failed", error=error))
        for actor in list(runtime.actors)
    ]
    for future in futures:
        try:
            future.result(loop.EXIT_FLUSH_TIMEOUT_SECONDS)
        except Exception:
            _log.exception("strikes: a run could not be flushed on SIGTERM")
    loop.shutdown_runtime()


def _terminate() -> None:
    try:
        _flush_all(TERMINATED_ERROR)
    finally:
        _flushed.set()
        os.kill(os.getpid(), signal.SIGTERM)  # back to the handler, on the main thread
        time.sleep(_GRACE_SECONDS)
        os._exit(128 + signal.SIGTERM)


def _handle(signum: int, frame: FrameType | None) -> None:
    previous = _previous
    if callable(previous):
        # The user's handler decides; give it the data first without waiting here.
        _request_flush()
        previous(signum, frame)
        return
    if _flushed.is_set():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if not _terminating.acquire(blocking=False):
        return  # a second SIGTERM while flushing: the first one ends the process
    threading.Thread(target=_terminate, name="strikes-sigterm", daemon=True).start()


def _request_flush() -> None:
    from strikes.runtime import loop  # noqa: PLC0415

    runtime = loop._runtime
    if runtime is None or runtime.closed or runtime.pid != os.getpid():
        return
    for actor in list(runtime.actors):
        runtime.submit(actor.flush())
