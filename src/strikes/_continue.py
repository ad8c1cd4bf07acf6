"""The portable run context: log into an open run from another thread, process or host.

``get_run_context()`` captures where the current span is (run id, span ids, W3C
``traceparent``, where the data goes); ``continue_run(context)`` makes this context log
under that span through a writer of this process. Every process writes its own segments
into the run's directory and the reader merges them, so the owner of the run never has
to hear from its workers.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from strikes._config import Settings, get_settings
from strikes._context import Span, current_span
from strikes._run import Run
from strikes.sinks.local import LocalStore

if TYPE_CHECKING:
    from contextvars import Token

    from strikes._values import MetricPoint
    from strikes.sinks.base import Sink

__all__ = [
    "ENV_VAR",
    "ContinuedRun",
    "RunContext",
    "continue_run",
    "get_run_context",
    "otel_traceparent",
]

ENV_VAR = "STRIKES_RUN_CONTEXT"
"""The environment variable ``continue_run()`` reads when given no context (JSON)."""

OTEL_ATTRIBUTE = "otel.traceparent"
"""Run attribute recording the OpenTelemetry span a run was opened in."""

_HEX = frozenset("0123456789abcdef")


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and set(value) <= _HEX and value != "0" * length


class RunContext(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Where to log in an open run: a small value that pickles and encodes to JSON.

    Make one with :func:`get_run_context`; hand it to :func:`continue_run` anywhere.
    """

    run_id: str
    """The run (32 hex digits)."""
    span_id: str
    """The span to log under: the task that was current, or the run's own span."""
    parent_id: str = ""
    """That span's parent (``""`` when it is the run's span)."""
    run_span_id: str
    """The run's own span."""
    project: str
    run_name: str
    traceparent: str
    """W3C trace context of ``span_id``: ``00-<trace id>-<span id>-01``."""
    store_dir: str | None = None
    """The local store the run writes to, if any (a shared path for other hosts)."""
    otlp_endpoint: str | None = None
    """The OTLP/HTTP traces endpoint the run exports to, if any."""
    otlp_metrics_endpoint: str | None = None
    """The OTLP/HTTP metrics endpoint that goes with it."""

    def __post_init__(self) -> None:
        if not _is_hex(self.run_id, 32):
            raise ValueError(f"run_id must be 32 lowercase hex digits, got {self.run_id!r}")
        for name in ("span_id", "run_span_id"):
            if not _is_hex(getattr(self, name), 16):
                raise ValueError(f"{name} must be 16 lowercase hex digits")
        if not _parse_traceparent(self.traceparent):
            raise ValueError(f"traceparent is not W3C trace context: {self.traceparent!r}")

    @property
    def trace_id(self) -> str:
        """The OpenTelemetry trace id (the run id, or the trace the run was opened in)."""
        return self.traceparent.split("-")[1]

    def to_json(self) -> str:
        """The context as JSON, e.g. for ``STRIKES_RUN_CONTEXT``."""
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> RunContext:
        """Decode a context from JSON; raises ``ValueError`` when it is not one."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:  # a subclass of ValueError, said plainly
            raise ValueError(f"not a strikes run context: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a strikes run context: {exc}") from None

    def to_env(self) -> dict[str, str]:
        """``{"STRIKES_RUN_CONTEXT": <json>}``: merge into a child process's environment."""
        return {ENV_VAR: self.to_json()}


def _parse_traceparent(value: str) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C ``traceparent`` of version 00, else ``None``."""
    parts = value.split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[3]) != 2 or not set(parts[3]) <= _HEX:
        return None
    trace_id, span_id = parts[1], parts[2]
    if not (_is_hex(trace_id, 32) and _is_hex(span_id, 16)):
        return None
    return trace_id, span_id


def otel_traceparent() -> str | None:
    """The W3C ``traceparent`` of the active OpenTelemetry span, if there is one.

    Only looks when the program already imported ``opentelemetry.trace``: a program that
    does not use OpenTelemetry pays nothing.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-01"


def _trace_id(run: Run) -> str:
    # A run opened inside an OpenTelemetry span belongs to that span's trace.
    parsed = _parse_traceparent(str(run.attributes.get(OTEL_ATTRIBUTE, "")))
    return parsed[0] if parsed is not None else run.run_id


def get_run_context() -> RunContext:
    """The context of the current span, to continue its run elsewhere.

    Raises ``RuntimeError`` when no run is open in this context.
    """
    span = current_span.get()
    if span is None:
        raise RuntimeError("get_run_context() needs an open run; call it inside `with run():`")
    run = span.run
    settings = run._settings
    store_dir = next(
        (str(sink.path) for sink in settings.sinks if isinstance(sink, LocalStore)), None
    )
    traces: str | None = None
    metrics: str | None = None
    for sink in settings.sinks:  # an OTLPSink, found without importing the optional extra
        if hasattr(sink, "traces_endpoint") and hasattr(sink, "metrics_endpoint"):
            traces, metrics = str(sink.traces_endpoint), str(sink.metrics_endpoint)
            break
    return RunContext(
        run_id=run.run_id,
        span_id=span.span_id,
        parent_id=span.parent_id,
        run_span_id=run.span_id,
        project=run.project,
        run_name=run.name,
        traceparent=f"00-{_trace_id(run)}-{span.span_id}-01",
        store_dir=store_dir,
        otlp_endpoint=traces,
        otlp_metrics_endpoint=metrics,
    )


class _RemoteSpan(Span):
    """A span of another writer, standing in as the parent of what is logged here."""

    __slots__ = ("inputs", "metrics", "outputs")

    def __init__(self, run: Run, span_id: str, parent_id: str) -> None:
        super().__init__()
        self.run = run
        self.span_id = span_id
        self.parent_id = parent_id
        self.label = ""
        self.children = []
        self.metrics: dict[str, list[MetricPoint]] = {}
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}


def _continuation_settings(context: RunContext) -> Settings:
    """The settings of a continuation here: ours, with the local store at the run's store."""
    settings = get_settings()
    sinks: list[Sink] = []
    target = Path(context.store_dir) if context.store_dir is not None else None
    for sink in settings.sinks:
        if isinstance(sink, LocalStore) and target is not None:
            # The run lives where its owner writes, whatever this process's default is
            # (on another host: the same path, e.g. a shared mount; or rewrite
            # ``store_dir`` in the context).
            if not any(isinstance(kept, LocalStore) for kept in sinks):
                sinks.append(sink if sink.path == target else LocalStore(target))
        else:
            sinks.append(sink)
    if context.otlp_endpoint is not None and not any(
        hasattr(sink, "traces_endpoint") for sink in sinks
    ):
        try:
            from strikes.sinks.otlp import OTLPSink  # noqa: PLC0415 - optional extra
        except ImportError:
            pass  # without strikes[otlp] here, the owner's process still exports its spans
        else:
            sinks.append(
                OTLPSink(
                    traces_endpoint=context.otlp_endpoint,
                    metrics_endpoint=context.otlp_metrics_endpoint,
                )
            )
    return dataclasses.replace(settings, project=context.project, sinks=tuple(sinks))


_writers: dict[tuple[int, str, str | None, str | None], Run] = {}
_writers_lock = threading.Lock()


def _continuation_writer(context: RunContext) -> Run:
    """The writer of the run in this process: made once, shared by every continuation.

    One writer per process keeps one segment file per process, however many tasks a
    pool worker runs; the runtime closes it at exit.
    """
    global _fork_hook  # noqa: PLW0603 - registered once, on first use (no import-time hooks)
    key = (os.getpid(), context.run_id, context.store_dir, context.otlp_endpoint)
    if not _fork_hook:
        _fork_hook = True
        os.register_at_fork(after_in_child=_forget_writers_after_fork)
    with _writers_lock:
        run = _writers.get(key)
        if run is None:
            settings = _continuation_settings(context)
            run = Run._continuation(
                run_id=context.run_id,
                span_id=context.run_span_id,
                name=context.run_name,
                project=context.project,
                settings=settings,
            )
            if context.trace_id != context.run_id:
                run.attributes[OTEL_ATTRIBUTE] = f"00-{context.trace_id}-{run.span_id}-01"
            for sink in settings.sinks:
                link = getattr(sink, "link_trace", None)
                if link is not None:
                    link(context.run_id, context.trace_id)
            _writers[key] = run
        return run


def _forget_writers_after_fork() -> None:
    # The parent's writers live on a thread that does not exist in the child.
    global _writers_lock  # noqa: PLW0603
    _writers.clear()
    _writers_lock = threading.Lock()


_fork_hook = False


class ContinuedRun:
    """A continuation of a run for ``with`` or ``async with``; leaving it flushes.

    Inside, ``log_*`` calls and tasks belong to the context's span of the original run.
    """

    __slots__ = ("_token", "context", "run", "span")

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.run: Run | None = None
        self.span: Span | None = None
        self._token: Token[Span | None] | None = None

    def __repr__(self) -> str:
        return f"ContinuedRun(run_id={self.context.run_id!r}, span_id={self.context.span_id!r})"

    def _enter(self) -> Run:
        if self._token is not None:
            raise RuntimeError("this continue_run() is already entered; make a new one")
        context = self.context
        current = current_span.get()
        if current is not None and current.run.run_id != context.run_id:
            raise RuntimeError(
                f"continue_run() of run {context.run_name!r} inside run {current.run.name!r}: "
                "a context belongs to one run at a time"
            )
        run = _continuation_writer(context)
        # A stand-in per block, even for the run's own span: what it collects (child
        # tasks, live metrics) goes with the block, not into a writer that lives on.
        span = _RemoteSpan(run, context.span_id, context.parent_id)
        self.run, self.span = run, span
        self._token = current_span.set(span)
        return run

    def _exit(self) -> Run:
        token, self._token = self._token, None
        if token is None:
            raise RuntimeError("continue_run() exited without being entered")
        try:
            current_span.reset(token)
        except ValueError:  # exited in another context than it was entered in
            if current_span.get() is self.span:
                current_span.set(None)
        assert self.run is not None
        return self.run

    def __enter__(self) -> Run:
        return self._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An exception is not recorded here: it belongs to the caller (a task inside
        # records its own), and the owner decides whether the run failed.
        self._exit().push_update()

    async def __aenter__(self) -> Run:
        return self._enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit().push_update_async()


def continue_run(context: RunContext | str | bytes | None = None) -> ContinuedRun:
    """Continue the run of ``context`` here: use it with ``with`` or ``async with``.

    ``context`` is a :class:`RunContext`, or its JSON; left out, it is read from the
    ``STRIKES_RUN_CONTEXT`` environment variable. Raises ``TypeError`` for another
    type and ``ValueError`` for a malformed context or a missing variable.
    """
    if context is None:
        raw = os.environ.get(ENV_VAR)
        if not raw:
            raise ValueError(
                f"continue_run() got no context and ${ENV_VAR} is not set; pass the value "
                "of get_run_context()"
            )
        context = RunContext.from_json(raw)
    elif isinstance(context, str | bytes):
        context = RunContext.from_json(context)
    elif not isinstance(context, RunContext):
        raise TypeError(
            f"context must be a RunContext (from get_run_context()), got "
            f"{type(context).__qualname__}"
        )
    return ContinuedRun(context)

