"""OTLPSink: runs and tasks as OpenTelemetry spans, metrics as OTLP metrics, over OTLP/HTTP.

Needs the ``otlp`` extra (``pip install 'strikes[otlp]'``: opentelemetry-proto, httpx).
The trace id of a run is its run id (or the trace of the OpenTelemetry span it was opened
in), span ids are strikes' own, so ``traceparent`` values from ``get_run_context()`` name
the exported spans exactly.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import itertools
import math
import os
import random
import secrets
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
import httpx
import msgspec
import structlog
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from strikes.events import (
    Artifact,
    Error,
    Event,
    Input,
    Metric,
    Output,
    Param,
    Provenance,
    RunFinished,
    RunProvenance,
    RunStarted,
    Tag,
    TaskFinished,
    TaskStarted,
)
from strikes.sinks.base import Batch, Sink

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["OTLPExportError", "OTLPSink"]

_log = structlog.get_logger("strikes.otlp")

DEFAULT_ENDPOINT = "http://localhost:4318"
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
"""Status codes the OTLP/HTTP spec says to retry (with ``Retry-After`` when given)."""
MetricsMode = Literal["otlp", "events", "both"]
_SCOPE = InstrumentationScope(name="strikes")
_json = msgspec.json.Encoder(enc_hook=repr)


class OTLPExportError(RuntimeError):
    """The receiver refused an export, or kept failing until the retry deadline."""


def _env_headers(raw: str | None) -> dict[str, str]:
    """Headers from ``key=value,key2=value2`` (values URL-encoded), as the OTel spec says."""
    headers: dict[str, str] = {}
    for item in (raw or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return headers


def _signal_url(explicit: str | None, signal: str, base: str | None) -> str:
    env_specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if explicit is not None:
        return explicit
    if env_specific:
        return env_specific  # the signal-specific variable is used as it is
    root = base or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    return f"{root.rstrip('/')}/v1/{signal}"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(slots=True)
class _OpenSpan:
    """A span whose start arrived and whose end has not yet."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    name: str
    start: int
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[PbSpan.Event] = field(default_factory=list)
    last_ts: int = 0


class OTLPSink(Sink):
    """Exports runs and tasks as spans, and metrics as OTLP gauges, over OTLP/HTTP protobuf.

    ``endpoint`` is the receiver's base URL (``/v1/traces`` and ``/v1/metrics`` are
    appended); ``traces_endpoint``/``metrics_endpoint`` are full URLs. Left out, they come
    from ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT``, else ``http://localhost:4318``.
    ``headers`` add to ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]HEADERS``. ``metrics`` picks
    where metric points go: ``"otlp"`` (OTLP gauges, each point tagged with its span),
    ``"events"`` (span events on their span, never capped; for trace-only backends) or
    ``"both"``. Spans are batched: sent when ``max_batch`` are ready, after
    ``export_interval`` seconds, and on every ``push_update()``/run end. Failed exports are
    retried per the OTLP spec (429/502/503/504 and connection errors, honouring
    ``Retry-After``) until ``timeout`` seconds pass.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        traces_endpoint: str | None = None,
        metrics_endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        service_name: str | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        metrics: MetricsMode = "otlp",
        compression: Literal["gzip", "none"] | None = None,
        max_batch: int = 512,
        max_queue: int = 100_000,
        export_interval: float = 5.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if metrics not in ("otlp", "events", "both"):
            raise ValueError(f"metrics must be 'otlp', 'events' or 'both'; got {metrics!r}")
        for name, value in (("max_batch", max_batch), ("max_queue", max_queue)):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if max_batch > max_queue:
            raise ValueError(f"max_batch ({max_batch}) must be <= max_queue ({max_queue})")
        self.traces_endpoint = _signal_url(traces_endpoint, "traces", endpoint)
        self.metrics_endpoint = _signal_url(metrics_endpoint, "metrics", endpoint)
        common = _env_headers(os.environ.get("OTEL_EXPORTER_OTLP_HEADERS"))
        self.traces_headers = {
            **common,
            **_env_headers(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")),
            **(headers or {}),
        }
        self.metrics_headers = {
            **common,
            **_env_headers(os.environ.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS")),
            **(headers or {}),
        }
        if timeout is None:
            timeout = float(os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", "10000")) / 1000
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        self.timeout = timeout
        if compression is None:
            compression = (
                "gzip" if os.environ.get("OTEL_EXPORTER_OTLP_COMPRESSION") == "gzip" else "none"
            )
        self.compression = compression
        self.metrics_mode: MetricsMode = metrics
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.export_interval = export_interval
        self.backoff = backoff
        self.max_backoff = max_backoff
        resource = {
            "service.name": service_name or os.environ.get("OTEL_SERVICE_NAME") or "strikes",
            "telemetry.sdk.name": "strikes",
            **(resource_attributes or {}),
        }
        self._resource = Resource(attributes=[_kv(k, v) for k, v in resource.items()])
        self.exported_spans = 0
        """Spans the receiver accepted."""
        self.exported_points = 0
        """Metric points the receiver accepted."""
        self.dropped = 0
        """Spans and points dropped because the queue was full (logged when it happens)."""
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._client: httpx.AsyncClient | None = None
        self._traces: dict[str, tuple[bytes, bytes]] = {}
        self._open: dict[str, _OpenSpan] = {}
        self._remote: dict[tuple[str, str], _OpenSpan] = {}
        self._spans: deque[PbSpan] = deque()
        self._points: deque[Metric] = deque()
        self._last_batch: dict[tuple[str, str], Batch] = {}
        self._last_export = time.monotonic()
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"OTLPSink({self.traces_endpoint!r})"

    def link_trace(self, run_id: str, trace_id: str, parent_span_id: str = "") -> None:
        """Export the spans of ``run_id`` in trace ``trace_id`` (under ``parent_span_id``)."""
        self._traces[run_id] = (bytes.fromhex(trace_id), bytes.fromhex(parent_span_id))

    # -- the Sink protocol -------------------------------------------------------------

    async def open(self) -> None:
        """Make the HTTP client (anew in a forked child, forgetting the parent's spans)."""
        if self._pid != os.getpid():
            self._reset()
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)

    async def write(self, batch: Batch) -> None:
        """Fold the batch into open spans; export when a batch of spans is ready or due.

        A retried batch (after a failed export) is folded once.
        """
        key = (batch.run_id, batch.writer_id)
        if self._last_batch.get(key) is not batch:
            self._last_batch[key] = batch
            self._fold(batch)
            if batch.final:
                self._close_remote(batch.run_id)
                self._last_batch.pop(key, None)
        due = time.monotonic() - self._last_export >= self.export_interval
        if due or len(self._spans) >= self.max_batch or len(self._points) >= self.max_batch:
            await self._export()

    async def flush(self) -> None:
        """Export every finished span and every metric point now."""
        self._close_remote(None)
        await self._export()

    async def close(self) -> None:
        """Export what is left (spans still open end now, marked incomplete) and disconnect."""
        if self._pid != os.getpid():
            return
        now = time.time_ns()
        self._close_remote(None)
        for span in list(self._open.values()):
            span.attributes["strikes.incomplete"] = True
            self._finish(span, now, None)
        self._open.clear()
        try:
            await self._export()
        finally:
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    # -- events to spans -------------------------------------------------------------

    def _trace(self, run_id: str) -> tuple[bytes, bytes]:
        found = self._traces.get(run_id)
        if found is None:
            found = self._traces[run_id] = (bytes.fromhex(run_id), b"")
        return found

    def _fold(self, batch: Batch) -> None:
        for event in batch.events:
            match event:
                case RunStarted():
                    parent = str(event.attributes.get("otel.traceparent", ""))
                    parts = parent.split("-")
                    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
                        self.link_trace(event.run_id, parts[1], parts[2])
                    trace_id, otel_parent = self._trace(event.run_id)
                    span = self._start(event, trace_id, otel_parent, event.name)
                    span.attributes.update(
                        {
                            "strikes.kind": "run",
                            "strikes.run_id": event.run_id,
                            "strikes.project": event.project,
                            "strikes.host": event.host,
                            "strikes.pid": event.pid,
                        }
                    )
                    self._add_attributes(span, event.tags, event.attributes)
                case TaskStarted():
                    trace_id, _ = self._trace(event.run_id)
                    span = self._start(event, trace_id, bytes.fromhex(event.parent_id), event.name)
                    span.attributes.update(
                        {
                            "strikes.kind": "task",
                            "strikes.run_id": event.run_id,
                            "strikes.label": event.label,
                        }
                    )
                    self._add_attributes(span, event.tags, event.attributes)
                case RunFinished() | TaskFinished():
                    open_span = self._open.pop(event.span_id, None)
                    if open_span is not None:
                        failed = (
                            event.status == "failed"
                            if isinstance(event, RunFinished)
                            else event.failed
                        )
                        self._finish(open_span, event.ts, event.error if failed else None)
                case Metric():
                    self._metric(event)
                case _:
                    self._annotate(event)

    def _start(self, event: Event, trace_id: bytes, parent: bytes, name: str) -> _OpenSpan:
        span = _OpenSpan(trace_id, bytes.fromhex(event.span_id), parent, name, event.ts)
        span.last_ts = event.ts
        self._open[event.span_id] = span
        return span

    @staticmethod
    def _add_attributes(
        span: _OpenSpan, tags: tuple[str, ...], attributes: Mapping[str, Any]
    ) -> None:
        if tags:
            span.attributes["strikes.tags"] = list(tags)
        for key, value in attributes.items():
            span.attributes[f"attributes.{key}"] = value

    def _target(self, event: Event) -> _OpenSpan:
        """The span an event belongs to: open here, or a span of another writer.

        A span of another writer (the parent of a ``continue_run`` block) cannot be
        changed from here: what is logged on it goes to a ``continue_run`` child span,
        ended at the next flush.
        """
        span = self._open.get(event.span_id)
        if span is not None:
            return span
        key = (event.run_id, event.span_id)
        remote = self._remote.get(key)
        if remote is None:
            trace_id, _ = self._trace(event.run_id)
            remote = self._remote[key] = _OpenSpan(
                trace_id,
                secrets.token_bytes(8),
                bytes.fromhex(event.span_id),
                "continue_run",
                event.ts,
                {"strikes.kind": "continuation", "strikes.run_id": event.run_id},
            )
        return remote

    def _annotate(self, event: Event) -> None:
        span = self._target(event)
        span.last_ts = max(span.last_ts, event.ts)
        match event:
            case Param():
                span.attributes[f"params.{event.name}"] = event.value
            case RunProvenance():
                span.attributes.update(_provenance_attributes(event.provenance))
            case Tag():
                known = list(span.attributes.get("strikes.tags", []))
                known.extend(t for t in event.tags if t not in known)
                span.attributes["strikes.tags"] = known
            case Input() | Output():
                prefix = "inputs" if isinstance(event, Input) else "outputs"
                if event.ref is not None:  # large values travel by content hash
                    span.attributes[f"{prefix}.{event.name}"] = f"sha256:{event.ref}"
                else:
                    span.attributes[f"{prefix}.{event.name}"] = event.value
            case Artifact():
                span.events.append(
                    _event(
                        "strikes.artifact",
                        event.ts,
                        {
                            "artifact.name": event.name,
                            "artifact.source": event.source,
                            "artifact.files": [f"{f.path}=sha256:{f.hash}" for f in event.files],
                        },
                    )
                )
            case Error():
                span.events.append(
                    _event(
                        "exception",
                        event.ts,
                        {
                            "exception.type": event.type,
                            "exception.message": event.message,
                            "exception.stacktrace": event.traceback,
                        },
                    )
                )
            case _:
                pass

    def _metric(self, event: Metric) -> None:
        if self.metrics_mode != "otlp":
            span = self._target(event)
            span.last_ts = max(span.last_ts, event.ts)
            span.events.append(
                _event(
                    "strikes.metric",
                    event.ts,
                    {
                        "metric.name": event.name,
                        "metric.value": event.value,
                        "metric.step": event.step,
                    },
                )
            )
        if self.metrics_mode != "events":
            # Kept as the event itself: protobuf points are built per export, in bulk.
            self._queue(self._points, event)

    def _finish(self, span: _OpenSpan, end: int, error: str | None) -> None:
        status = (
            Status(code=Status.STATUS_CODE_ERROR, message=error)
            if error is not None
            else Status(code=Status.STATUS_CODE_UNSET)
        )
        self._queue(
            self._spans,
            PbSpan(
                trace_id=span.trace_id,
                span_id=span.span_id,
                parent_span_id=span.parent_id,
                name=span.name,
                kind=PbSpan.SPAN_KIND_INTERNAL,
                start_time_unix_nano=span.start,
                end_time_unix_nano=max(end, span.start),
                attributes=[_kv(k, v) for k, v in span.attributes.items()],
                events=span.events,
                status=status,
            ),
        )

    def _close_remote(self, run_id: str | None) -> None:
        for key in [k for k in self._remote if run_id is None or k[0] == run_id]:
            span = self._remote.pop(key)
            self._finish(span, span.last_ts, None)

    def _queue(self, queue: deque[Any], item: Any) -> None:
        if len(queue) >= self.max_queue:
            # The receiver has been down for long: keep memory bounded, count and say so.
            queue.popleft()
            self.dropped += 1
            if self.dropped == 1:
                _log.error(
                    "strikes: OTLP queue full, dropping the oldest; count in OTLPSink.dropped",
                    max_queue=self.max_queue,
                )
        queue.append(item)

    # -- export ------------------------------------------------------------------------

    async def _export(self) -> None:
        async with self._lock:
            self._last_export = time.monotonic()
            while self._spans:
                spans = list(itertools.islice(self._spans, self.max_batch))
                request = ExportTraceServiceRequest(
                    resource_spans=[
                        ResourceSpans(
                            resource=self._resource,
                            scope_spans=[ScopeSpans(scope=_SCOPE, spans=spans)],
                        )
                    ]
                )
                response = await self._post(
                    self.traces_endpoint, request.SerializeToString(), self.traces_headers
                )
                self._partial(ExportTraceServiceResponse, response, "spans")
                for _ in spans:
                    self._spans.popleft()
                self.exported_spans += len(spans)
            while self._points:
                chosen = list(itertools.islice(self._points, self.max_batch))
                request_m = self._metrics_request(chosen)
                response = await self._post(
                    self.metrics_endpoint, request_m.SerializeToString(), self.metrics_headers
                )
                self._partial(ExportMetricsServiceResponse, response, "metric points")
                for _ in chosen:
                    self._points.popleft()
                self.exported_points += len(chosen)

    def _metrics_request(self, chosen: list[Metric]) -> ExportMetricsServiceRequest:
        """One gauge per metric name; each point tagged with its run, span, trace and step."""
        scope = ScopeMetrics(scope=_SCOPE)
        gauges: dict[str, Gauge] = {}
        series: dict[tuple[str, str], list[KeyValue]] = {}
        for event in chosen:
            gauge = gauges.get(event.name)
            if gauge is None:
                gauge = gauges[event.name] = scope.metrics.add(name=event.name).gauge
            base = series.get((event.run_id, event.span_id))
            if base is None:
                base = series[event.run_id, event.span_id] = [
                    _kv("strikes.run_id", event.run_id),
                    _kv("strikes.span_id", event.span_id),
                    _kv("trace_id", self._trace(event.run_id)[0].hex()),
                ]
            point = gauge.data_points.add()
            point.time_unix_nano = event.ts
            point.as_double = event.value
            point.attributes.extend(base)
            step = point.attributes.add()
            step.key = "step"
            step.value.int_value = event.step
            if event.attributes:
                point.attributes.extend(_kv(k, v) for k, v in event.attributes.items())
        return ExportMetricsServiceRequest(
            resource_metrics=[ResourceMetrics(resource=self._resource, scope_metrics=[scope])]
        )

    @staticmethod
    def _partial(
        kind: type[ExportTraceServiceResponse | ExportMetricsServiceResponse],
        body: bytes,
        what: str,
    ) -> None:
        if not body:
            return
        try:
            response = kind.FromString(body)
        except Exception:  # a receiver answering 2xx with no protobuf is not an error
            return
        partial = response.partial_success
        rejected = getattr(partial, "rejected_spans", 0) or getattr(
            partial, "rejected_data_points", 0
        )
        if rejected or partial.error_message:
            _log.warning(
                "strikes: OTLP receiver rejected part of an export",
                what=what,
                rejected=rejected,
                message=partial.error_message,
            )

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """POST one export, retrying as the OTLP/HTTP spec says; returns the response body."""
        client = self._client
        if client is None:
            client = self._client = httpx.AsyncClient(timeout=self.timeout)
        sent_headers = {"Content-Type": "application/x-protobuf", **headers}
        if self.compression == "gzip":
            body = gzip.compress(body)
            sent_headers["Content-Encoding"] = "gzip"
        deadline = time.monotonic() + self.timeout
        delay = self.backoff
        for attempt in itertools.count(1):
            wait: float | None = None
            try:
                response = await client.post(url, content=body, headers=sent_headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    return response.content
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise OTLPExportError(f"OTLP export to {url} refused: {problem}")
                wait = _retry_after(response.headers.get("Retry-After"))
            if wait is None:
                wait = delay * (1 + random.random() / 2)  # noqa: S311 - jitter, not crypto
                delay = min(delay * 2, self.max_backoff)
            if time.monotonic() + wait > deadline:
                raise OTLPExportError(
                    f"OTLP export to {url} failed after {attempt} attempts: {problem}"
                )
            _log.info(
                "strikes: OTLP export failed, retrying", url=url, attempt=attempt, error=problem
            )
            await anyio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _provenance_attributes(provenance: Provenance) -> dict[str, Any]:
    """``provenance.git_commit``, ``provenance.command``, ``provenance.env.RANK``, ..."""
    found: dict[str, Any] = {}
    for key, value in msgspec.structs.asdict(provenance).items():
        if key == "env":
            found.update({f"provenance.env.{name}": text for name, text in value.items()})
        elif value is not None:
            found[f"provenance.{key}"] = value
    return found


def _event(name: str, ts: int, attributes: Mapping[str, Any]) -> PbSpan.Event:
    return PbSpan.Event(
        time_unix_nano=ts, name=name, attributes=[_kv(k, v) for k, v in attributes.items()]
    )


MAX_ATTRIBUTE_BYTES = 4096
"""Longer attribute values are exported as a ``sha256:<hash>`` reference."""


def _kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=_any_value(value))


def _any_value(value: Any) -> AnyValue:  # noqa: PLR0911 - one return per OTLP value type
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str) and len(value) <= MAX_ATTRIBUTE_BYTES:
        return AnyValue(string_value=value)
    if (
        isinstance(value, list | tuple)
        and len(value) <= 128
        and all(isinstance(item, str | bool | int | float) for item in value)
    ):
        return AnyValue(array_value=ArrayValue(values=[_any_value(item) for item in value]))
    text = value if isinstance(value, str) else _json.encode(value).decode()
    if len(text) > MAX_ATTRIBUTE_BYTES:
        return AnyValue(string_value=f"sha256:{hashlib.sha256(text.encode()).hexdigest()}")
    return AnyValue(string_value=text)
