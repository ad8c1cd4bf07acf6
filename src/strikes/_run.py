"""Run: the context manager (sync and async) that opens a run, and its live view."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import socket
import time
import traceback
import weakref
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio.to_thread

from strikes._config import (
    Settings,
    get_settings,
    resolve_provenance,
    resolve_system_metrics,
)
from strikes._context import Span, current_span
from strikes._ids import new_run_id, new_span_id, random_run_name
from strikes._provenance import ProvenanceOptions, capture_provenance
from strikes._values import to_builtins
from strikes.events import Blob, Error, Event, Metric, RunStarted
from strikes.runtime.actor import Actor, ArtifactJob, Ending
from strikes.runtime.loop import get_runtime

if TYPE_CHECKING:
    from collections.abc import Callable

    from strikes._sysmetrics import SystemSampler

__all__ = ["Run", "check_name", "check_tags", "get_current_run", "run"]

MAX_NAME_LENGTH = 1024


def check_name(argument: str, value: object) -> str:
    """Return ``value`` if usable as a name; raises TypeError/ValueError naming ``argument``."""
    if type(value) is not str:
        raise TypeError(f"{argument} must be a str, got {type(value).__qualname__}")
    if not value or not value.strip():
        raise ValueError(f"{argument} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{argument} must be at most {MAX_NAME_LENGTH} characters, got {len(value)}"
        )
    if "\x00" in value:
        raise ValueError(f"{argument} must not contain NUL characters")
    return value


def check_tags(argument: str, tags: Iterable[str]) -> tuple[str, ...]:
    """Return ``tags`` as a tuple of names; a bare string is refused (it would split in letters)."""
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise TypeError(f"{argument} must be a list of str, got {type(tags).__qualname__}")
    return tuple(check_name(argument, tag) for tag in tags)


def error_events(span: Span, exc: BaseException, next_seq: Callable[[], int]) -> tuple[Error, str]:
    """The error event for ``exc`` raised in ``span``, and its one-line text."""
    text = f"{type(exc).__qualname__}: {exc}"
    event = Error(
        span.run.run_id,
        span.span_id,
        span.parent_id,
        next_seq(),
        time.time_ns(),
        type(exc).__qualname__,
        str(exc),
        "".join(traceback.format_exception(exc)),
    )
    return event, text


_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_fork_hook_installed = False


def _after_fork_in_child() -> None:
    # Runs inherited from the parent get a writer of their own in this process, made on
    # first use: the parent's actor lives on a thread that does not exist here.
    for inherited in list(_live_runs):
        inherited._detach_after_fork()


def _install_fork_hook() -> None:
    global _fork_hook_installed  # noqa: PLW0603
    if not _fork_hook_installed:
        _fork_hook_installed = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


class Run(Span):
    """One experiment or session: use ``with run(...)`` or ``async with run(...)``.

    While open it is the current run of its context: ``log_*`` calls, tasks and
    ``push_update()`` act on it. ``tasks``/``all_tasks`` give the live task tree and
    ``stats`` the writer's counts.
    """

    __slots__ = (
        "__weakref__",
        "_actor",
        "_final_stats",
        "_pid",
        "_provenance",
        "_sampler",
        "_settings",
        "_system_metrics",
        "_token",
        "attributes",
        "error",
        "name",
        "next_seq",
        "params",
        "project",
        "put",
        "run_id",
        "status",
        "tags",
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        project: str | None = None,
        tags: Iterable[str] = (),
        settings: Settings | None = None,
        provenance: bool | ProvenanceOptions | None = None,
        system_metrics: bool | float | None = None,
        **attributes: Any,
    ) -> None:
        super().__init__()
        self._settings = settings if settings is not None else get_settings()
        self._provenance = resolve_provenance(provenance, self._settings.provenance)
        self._system_metrics = resolve_system_metrics(system_metrics, self._settings.system_metrics)
        self._sampler: SystemSampler | None = None
        self.name = check_name("name", name) if name is not None else random_run_name()
        self.project = (
            check_name("project", project) if project is not None else self._settings.project
        )
        self.tags = list(dict.fromkeys(check_tags("tags", tags)))
        self.attributes: dict[str, Any] = {
            check_name("attribute name", key): to_builtins(value)
            for key, value in attributes.items()
        }
        self.run_id = new_run_id()
        self.span_id = new_span_id()
        self.parent_id = ""
        self.label = ""
        self.run = self
        self.children = []
        self.params: dict[str, Any] = {}
        self.status = "pending"
        self.error: str | None = None
        self._actor: Actor | None = None
        self._token: Any = None
        self._pid = os.getpid()
        self._final_stats: dict[str, int] | None = None
        self.put: Callable[[Event], None] = self._not_open
        self.next_seq: Callable[[], int] = self._not_open_seq

    def __repr__(self) -> str:
        return (
            f"Run(name={self.name!r}, run_id={self.run_id!r}, "
            f"project={self.project!r}, status={self.status!r})"
        )

    # -- lifecycle -----------------------------------------------------------------

    def _not_open(self, event: Event) -> None:  # noqa: ARG002 - stands in for put()
        raise RuntimeError(f"run {self.name!r} is not open")

    def _not_open_seq(self) -> int:
        raise RuntimeError(f"run {self.name!r} is not open")

    def _new_actor(self, *, owner: bool) -> Actor:
        settings = self._settings
        actor = Actor(
            get_runtime(),
            run_id=self.run_id,
            span_id=self.span_id,
            sinks=settings.sinks,
            batch_size=settings.batch_size,
            max_batch_size=settings.max_batch_size or settings.batch_size,
            mailbox_size=settings.mailbox_size,
            backpressure=settings.backpressure,
            flush_interval=settings.flush_interval,
            delivery=settings.delivery,
            owner=owner,
            spool_dir=settings.dir.expanduser().absolute() / "spool" if settings.spool else None,
            heartbeat_interval=settings.heartbeat_interval or None,
        )
        actor.start()
        self._actor = actor
        self.put = actor.put
        self.next_seq = actor.next_seq
        return actor

    @classmethod
    def _continuation(
        cls, *, run_id: str, span_id: str, name: str, project: str, settings: Settings
    ) -> Run:
        """A writer, in this process, of a run opened elsewhere (see ``continue_run``).

        It writes no RunStarted/RunFinished and no manifest: the run's owner does.
        """
        self = cls(name, project=project, settings=settings)
        self.run_id = run_id
        self.span_id = span_id
        self.status = "running"
        self._pid = -1  # never the owner, in this process or a forked child
        self._new_actor(owner=False)
        _install_fork_hook()
        _live_runs.add(self)
        return self

    def _start(self) -> Self:
        if self.status != "pending":
            raise RuntimeError(f"run {self.name!r} was already started; make a new run()")
        current = current_span.get()
        if current is not None:
            raise RuntimeError(
                f"run {self.name!r} cannot open inside run {current.run.name!r} in the same "
                "context; use a task for nested work, or start it in a separate task/thread"
            )
        _install_fork_hook()
        from strikes._continue import OTEL_ATTRIBUTE, otel_traceparent  # noqa: PLC0415 - cycle

        traceparent = otel_traceparent()
        if traceparent is not None:  # opened in an OpenTelemetry span: join its trace
            self.attributes.setdefault(OTEL_ATTRIBUTE, traceparent)
        actor = self._new_actor(owner=True)
        self.status = "running"
        self.put(
            RunStarted(
                self.run_id,
                self.span_id,
                "",
                self.next_seq(),
                time.time_ns(),
                self.name,
                self.project,
                tuple(self.tags),
                self.attributes,
                pid=self._pid,
                host=socket.gethostname(),
            )
        )
        if self._provenance is not None:
            # Captured on a worker thread of the runtime: git and the package scan take
            # milliseconds the caller (and its event loop) does not wait for.
            actor.capture(functools.partial(capture_provenance, self._provenance, _cwd()))
        if self._system_metrics is not None:
            self._start_sampler(actor, self._system_metrics)
        self._token = current_span.set(self)
        _live_runs.add(self)
        return self

    def _start_sampler(self, actor: Actor, interval: float) -> None:
        from strikes._sysmetrics import SystemSampler  # noqa: PLC0415 - only when asked

        run_id, span_id = self.run_id, self.span_id
        put, next_seq = actor.put, actor.next_seq

        def emit(values: dict[str, float], step: int) -> None:
            # On the sampler's thread: the run's own metrics, through its mailbox.
            if self.status != "running":
                return  # the run ended while this sample was taken
            ts = time.time_ns()
            for name, value in values.items():
                put(Metric(run_id, span_id, "", next_seq(), ts, name, value, step))

        sampler = SystemSampler(emit, interval)
        self._sampler = actor.sampler = sampler
        sampler.start()

    def _stop_sampler(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.stop()  # wakes it at once; returns when its thread is gone

    def _detach_after_fork(self) -> None:
        # The parent's sampler thread does not exist here, and its locks may be held:
        # never touch it.
        self._sampler = None
        self._actor = None
        self.put = self._put_in_child

    def _put_in_child(self, event: Event) -> None:
        # First event of an inherited run in a forked child: a writer of its own, keeping
        # the inherited sequence so numbers stay monotonic within this process.
        next_seq = self.next_seq
        actor = self._writer()
        actor.next_seq = next_seq
        self.next_seq = next_seq
        actor.put(event)

    def _writer(self) -> Actor:
        """Return the actor of this process for the run (made anew in a forked child)."""
        actor = self._actor
        if actor is None:
            actor = self._new_actor(owner=False)
        return actor

    def _finish(self, exc: BaseException | None) -> concurrent.futures.Future[None]:
        if self.status != "running":
            raise RuntimeError(f"run {self.name!r} is not open")
        self._stop_sampler()
        actor = self._writer()
        if exc is not None:
            event, self.error = error_events(self, exc, self.next_seq)
            self.put(event)
            self.status = "failed"
        else:
            self.status = "finished"
        ending = None
        if os.getpid() == self._pid:  # a forked child never ends its parent's run
            actor.finished = True
            # The actor writes run_finished once the provenance is in: it stays last.
            ending = Ending(self.status, self.error, time.time_ns(), actor.stats())
        self._reset_context()
        _live_runs.discard(self)
        return actor.runtime.submit(actor.close(ending=ending))

    def _reset_context(self) -> None:
        token, self._token = self._token, None
        try:
            current_span.reset(token)
        except ValueError:  # exited in another context than it was entered in
            if current_span.get() is self:
                current_span.set(None)

    def _closed(self) -> None:
        actor = self._actor
        if actor is not None:
            self._final_stats = actor.stats()
        self.put = self._not_open
        self.next_seq = self._not_open_seq

    def __enter__(self) -> Self:
        return self._start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc).result()
        self._closed()

    async def __aenter__(self) -> Self:
        return self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sampler is not None and self.status == "running":
            await anyio.to_thread.run_sync(self._stop_sampler)  # a join: not on the user's loop
        future = self._finish(exc)
        await anyio.to_thread.run_sync(future.result)
        self._closed()

    # -- live view -----------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counts of this process's writer: ``events``, ``dropped``, ``queued``, ...."""
        if self._final_stats is not None:
            return dict(self._final_stats)
        if self._actor is None:
            return dict.fromkeys(
                ("events", "dropped", "blocked", "queued", "undelivered", "spooled", "late"), 0
            )
        return self._actor.stats()

    def push_update(self) -> None:
        """Block until everything logged to this run so far is in every sink."""
        actor = self._writer()
        actor.runtime.submit(actor.flush()).result()

    async def push_update_async(self) -> None:
        """Like :meth:`push_update`, without blocking the caller's event loop."""
        actor = self._writer()
        future = actor.runtime.submit(actor.flush())
        await anyio.to_thread.run_sync(future.result)

    def _put_blob(self, blob: Blob) -> None:
        self._writer().put_blob(blob)

    def _put_job(self, job: ArtifactJob) -> None:
        # Resolved with the next batch (size, age or push_update), like any event.
        self._writer().jobs.append(job)


def run(
    name: str | None = None,
    *,
    project: str | None = None,
    tags: Iterable[str] = (),
    provenance: bool | ProvenanceOptions | None = None,
    system_metrics: bool | float | None = None,
    **attributes: Any,
) -> Run:
    """Make a run to open with ``with`` or ``async with``; unnamed runs get a random name.

    ``provenance`` and ``system_metrics`` override ``configure()`` for this run: ``False``
    turns one off, ``True`` on, a :class:`ProvenanceOptions` chooses what is captured and
    a number is the seconds between system-metric samples (see ``docs/provenance.md``).
    """
    return Run(
        name,
        project=project,
        tags=tags,
        provenance=provenance,
        system_metrics=system_metrics,
        **attributes,
    )


def _cwd() -> Path | None:
    try:
        return Path.cwd()
    except OSError:  # the working directory was deleted
        return None


def get_current_run() -> Run | None:
    """The run open in this context, if any."""
    span = current_span.get()
    return span.run if span is not None else None
