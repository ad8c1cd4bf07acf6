"""OTLPSink: spans, metrics, retries and endpoints, against loopback OTLP/HTTP receivers."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")
pytest.importorskip("httpx")

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

import strikes as dn
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch
from strikes.sinks.otlp import OTLPExportError, OTLPSink


@dataclass
class Receiver:
    """A loopback OTLP/HTTP receiver: decodes every export, answers as scripted."""

    url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    points: list[tuple[str, Any]] = field(default_factory=list)
    answers: queue.Queue[tuple[int, dict[str, str]]] = field(default_factory=queue.Queue)

    def by_name(self) -> dict[str, Span]:
        return {span.name: span for span in self.spans}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes(item: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in item.attributes}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on a free loopback port, stopped after the test."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            got.requests.append((self.path, dict(self.headers.items())))
            try:
                status, headers = got.answers.get_nowait()
            except queue.Empty:
                status, headers = 200, {}
            if status == 200 and self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        got.spans.extend(scope_spans.spans)
            elif status == 200 and self.path == "/v1/metrics":
                metrics = ExportMetricsServiceRequest.FromString(body)
                for resource_metrics in metrics.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        for metric in scope_metrics.metrics:
                            got.points.extend((metric.name, p) for p in metric.gauge.data_points)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()


def nested_run(sink: OTLPSink) -> tuple[dn.Run, dict[str, str]]:
    """A run with params, nested tasks, metrics, a big output and a failed task."""
    dn.configure(sinks=[dn.LocalStore(), sink])
    ids: dict[str, str] = {}
    with dn.run("nested", tags=["otlp"], team="evals") as run:
        dn.log_param("lr", 0.01)
        with dn.task_span("outer") as outer:
            ids["outer"] = outer.span_id
            ids["traceparent"] = dn.get_run_context().traceparent
            dn.log_input("prompt", "hello")
            for step in range(3):
                dn.log_metric("loss", 1.0 / (step + 1), step=step)
            with dn.task_span("inner") as inner:
                ids["inner"] = inner.span_id
                dn.log_output("big", "y" * 100_000)
                dn.log_metric("acc", 0.75)
        with pytest.raises(ValueError, match="boom"), dn.task_span("broken") as broken:
            ids["broken"] = broken.span_id
            raise ValueError("boom")
    return run, ids


class TestSpans:
    def test_runs_and_tasks_become_a_span_tree(self, receiver: Receiver) -> None:
        """Trace id = run id, span ids are strikes' own, parents follow the task tree."""
        run, ids = nested_run(OTLPSink(receiver.url))
        spans = receiver.by_name()
        assert set(spans) == {"nested", "outer", "inner", "broken"}
        assert {span.trace_id.hex() for span in spans.values()} == {run.run_id}
        assert spans["nested"].span_id.hex() == run.span_id
        assert spans["nested"].parent_span_id == b""
        assert spans["outer"].span_id.hex() == ids["outer"]
        assert spans["outer"].parent_span_id.hex() == run.span_id
        assert spans["inner"].parent_span_id.hex() == ids["outer"]
        assert ids["traceparent"] == f"00-{run.run_id}-{ids['outer']}-01"
        for span in spans.values():
            assert span.end_time_unix_nano >= span.start_time_unix_nano > 0

    def test_values_become_attributes(self, receiver: Receiver) -> None:
        """Params, tags, attributes, inputs and outputs are attributes; big values by hash."""
        nested_run(OTLPSink(receiver.url))
        spans = receiver.by_name()
        run_attributes = attributes(spans["nested"])
        assert run_attributes["params.lr"] == 0.01
        assert run_attributes["strikes.tags"] == ["otlp"]
        assert run_attributes["attributes.team"] == "evals"
        assert attributes(spans["outer"])["inputs.prompt"] == "hello"
        assert attributes(spans["outer"])["strikes.label"] == "outer"
        big = attributes(spans["inner"])["outputs.big"]
        assert big.startswith("sha256:")
        assert len(big) == len("sha256:") + 64

    def test_provenance_becomes_run_attributes(self, receiver: Receiver) -> None:
        """The run's provenance is on its span as ``provenance.*`` attributes."""
        run, _ = nested_run(OTLPSink(receiver.url))
        run_attributes = attributes(receiver.by_name()["nested"])
        provenance = dn.open_store().run(run.run_id).provenance
        assert provenance is not None
        assert run_attributes["provenance.hostname"] == provenance.hostname
        assert run_attributes["provenance.pid"] == os.getpid()
        assert run_attributes["provenance.python_version"] == provenance.python_version
        assert run_attributes["provenance.packages_hash"] == provenance.packages_hash
        assert run_attributes["provenance.command"] == provenance.command

    def test_a_failed_task_is_an_error_span(self, receiver: Receiver) -> None:
        """A task that raised has error status and an ``exception`` event."""
        nested_run(OTLPSink(receiver.url))
        broken = receiver.by_name()["broken"]
        assert broken.status.code == Status.STATUS_CODE_ERROR
        assert "boom" in broken.status.message
        [event] = [e for e in broken.events if e.name == "exception"]
        assert attributes(event)["exception.type"] == "ValueError"
        assert receiver.by_name()["outer"].status.code == Status.STATUS_CODE_UNSET


class TestMetrics:
    def test_metrics_are_otlp_gauges_tagged_with_their_span(self, receiver: Receiver) -> None:
        """Each metric point goes to /v1/metrics with its value, time, step and span."""
        _, ids = nested_run(OTLPSink(receiver.url))
        loss = [(p.as_double, attributes(p)) for name, p in receiver.points if name == "loss"]
        assert [value for value, _ in loss] == [1.0, 0.5, 1.0 / 3]
        assert [a["step"] for _, a in loss] == [0, 1, 2]
        assert {a["strikes.span_id"] for _, a in loss} == {ids["outer"]}
        assert all(p.time_unix_nano > 0 for _, p in receiver.points)

    def test_metrics_as_span_events_are_never_capped(self, receiver: Receiver) -> None:
        """With metrics="events", thousands of points on one span all arrive as events."""
        sink = OTLPSink(receiver.url, metrics="events")
        dn.configure(sinks=[sink])
        with dn.run("many") as run:
            for step in range(5000):
                dn.log_metric("x", step, step=step)
        [span] = receiver.spans
        assert span.span_id.hex() == run.span_id
        values = [attributes(e)["metric.value"] for e in span.events if e.name == "strikes.metric"]
        assert values == [float(step) for step in range(5000)]
        assert receiver.points == []
        assert all(path == "/v1/traces" for path, _ in receiver.requests)


def run_state(run_id: str) -> RunState:
    return RunState(run_id, owner=True)


def one_run_batch() -> Batch:
    """A batch holding a whole (tiny) run, for driving the sink directly."""
    run_id, span_id = "0" * 31 + "1", "0" * 15 + "2"
    events: list[dn.events.Event] = [
        dn.events.RunStarted(run_id, span_id, "", 0, 1_000, "direct", "p"),
        dn.events.RunFinished(run_id, span_id, "", 1, 2_000, "finished"),
    ]
    return Batch(run_id=run_id, writer_id="w", events=events, blobs=[], state=run_state(run_id))


class TestRetries:
    @pytest.mark.anyio
    async def test_retryable_statuses_are_retried(self, receiver: Receiver) -> None:
        """503 with Retry-After and 429 without are retried; the span arrives once."""
        receiver.answers.put((503, {"Retry-After": "0"}))
        receiver.answers.put((429, {}))
        sink = OTLPSink(receiver.url, backoff=0.001)
        async with sink:
            await sink.write(one_run_batch())
            await sink.flush()
        assert [path for path, _ in receiver.requests] == ["/v1/traces"] * 3
        assert [span.name for span in receiver.spans] == ["direct"]
        assert sink.exported_spans == 1

    @pytest.mark.anyio
    async def test_other_errors_are_not_retried(self, receiver: Receiver) -> None:
        """A 400 raises at once; the spans stay queued and go with the next export."""
        receiver.answers.put((400, {}))
        sink = OTLPSink(receiver.url, backoff=0.001)
        async with sink:
            await sink.write(one_run_batch())
            with pytest.raises(OTLPExportError, match="HTTP 400"):
                await sink.flush()
            assert len(receiver.requests) == 1
            await sink.flush()
        assert [span.name for span in receiver.spans] == ["direct"]

    @pytest.mark.anyio
    async def test_gives_up_at_the_deadline(self, receiver: Receiver) -> None:
        """A receiver that stays unavailable fails the export once ``timeout`` has passed."""
        for _ in range(1000):
            receiver.answers.put((503, {}))
        sink = OTLPSink(receiver.url, timeout=0.3, backoff=0.01)
        async with sink:
            await sink.write(one_run_batch())
            with pytest.raises(OTLPExportError, match="attempts: HTTP 503"):
                await sink.flush()
            assert len(receiver.requests) >= 2
            while not receiver.answers.empty():  # the receiver is back: nothing was lost
                receiver.answers.get_nowait()
        assert [span.name for span in receiver.spans] == ["direct"]

    @pytest.mark.anyio
    async def test_a_retried_batch_is_folded_once(self, receiver: Receiver) -> None:
        """The runtime retrying write() with the same batch does not duplicate spans."""
        sink = OTLPSink(receiver.url)
        batch = one_run_batch()
        async with sink:
            await sink.write(batch)
            await sink.write(batch)
            await sink.flush()
        assert len(receiver.spans) == 1


class TestEndpoints:
    def test_environment_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_EXPORTER_OTLP_* set the URLs and headers; signal-specific ones win."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/custom")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,team=x")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "team=y")
        sink = OTLPSink()
        assert sink.traces_endpoint == "http://collector:4318/v1/traces"
        assert sink.metrics_endpoint == "http://m:9/custom"
        assert sink.traces_headers == {"api-key": "a b", "team": "y"}
        assert sink.metrics_headers == {"api-key": "a b", "team": "x"}
        assert OTLPSink("http://arg:1", headers={"team": "z"}).traces_headers["team"] == "z"
        assert OTLPSink("http://arg:1").traces_endpoint == "http://arg:1/v1/traces"

    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With nothing set, the OTLP/HTTP default port on localhost."""
        for name in [n for n in os.environ if n.startswith("OTEL_")]:
            monkeypatch.delenv(name)
        assert OTLPSink().traces_endpoint == "http://localhost:4318/v1/traces"

    def test_bad_arguments(self) -> None:
        """Bad modes and sizes are refused, naming the argument."""
        with pytest.raises(ValueError, match="metrics"):
            OTLPSink(metrics="spans")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_batch"):
            OTLPSink(max_batch=0)
        with pytest.raises(ValueError, match="timeout"):
            OTLPSink(timeout=0)

    def test_headers_and_gzip_reach_the_receiver(self, receiver: Receiver) -> None:
        """Configured headers are sent; gzip compression is declared and decodes."""
        nested_run(OTLPSink(receiver.url, headers={"x-api-key": "k"}, compression="gzip"))
        assert {h.get("x-api-key") for _, h in receiver.requests} == {"k"}
        assert {h.get("Content-Encoding") for _, h in receiver.requests} == {"gzip"}
        assert len(receiver.spans) == 4


def worker_logs(context: dn.RunContext, index: int) -> None:
    with dn.continue_run(context):
        dn.log_param(f"worker_{index}", index)
        with dn.task_span(f"worker-{index}"):
            dn.log_metric("w", index)


class TestAcrossProcesses:
    def test_workers_export_their_spans_into_the_trace(self, receiver: Receiver) -> None:
        """Spawned workers find the endpoint in the context and export under the right parent."""
        dn.configure(sinks=[dn.LocalStore(), OTLPSink(receiver.url)])
        with dn.run("fan-out") as run, dn.task_span("parent") as parent:
            context = dn.get_run_context()
            assert context.otlp_endpoint == f"{receiver.url}/v1/traces"
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(worker_logs, [context] * 2, range(2)))
        spans = receiver.by_name()
        assert {span.trace_id.hex() for span in receiver.spans} == {run.run_id}
        for index in range(2):
            assert spans[f"worker-{index}"].parent_span_id.hex() == parent.span_id
        # what a worker set on a span it does not own goes on a continue_run child span
        continuations = [s for s in receiver.spans if s.name == "continue_run"]
        assert {s.parent_span_id.hex() for s in continuations} == {parent.span_id}
        params = {k: v for s in continuations for k, v in attributes(s).items() if "worker" in k}
        assert params == {"params.worker_0": 0, "params.worker_1": 1}
        assert sorted(p.as_double for name, p in receiver.points if name == "w") == [0.0, 1.0]


class TestOpenTelemetrySDK:
    def test_strikes_and_sdk_spans_join_one_trace(self, receiver: Receiver) -> None:
        """A run inside an SDK span exports into that trace, its run span a child of it."""
        sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
        in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
        export = pytest.importorskip("opentelemetry.sdk.trace.export")
        exporter = in_memory.InMemorySpanExporter()
        provider = sdk_trace.TracerProvider()
        provider.add_span_processor(export.SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("app")
        dn.configure(sinks=[OTLPSink(receiver.url)])
        with tracer.start_as_current_span("request"):
            with dn.run("inside") as run, dn.task_span("work"):
                context = dn.get_run_context()
            with tracer.start_as_current_span("after"):
                pass
        provider.shutdown()
        sdk_spans = {span.name: span for span in exporter.get_finished_spans()}
        trace_id = f"{sdk_spans['request'].context.trace_id:032x}"
        assert f"{sdk_spans['after'].context.trace_id:032x}" == trace_id
        ours = receiver.by_name()
        assert {span.trace_id.hex() for span in receiver.spans} == {trace_id}
        assert ours["inside"].parent_span_id.hex() == f"{sdk_spans['request'].context.span_id:016x}"
        assert ours["work"].parent_span_id.hex() == run.span_id
        assert context.traceparent == f"00-{trace_id}-{ours['work'].span_id.hex()}-01"


    def test_workers_join_the_applications_trace(self, receiver: Receiver) -> None:
        """A spawned worker of a run opened in an SDK span exports into the same trace."""
        sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
        tracer = sdk_trace.TracerProvider().get_tracer("app")
        dn.configure(sinks=[OTLPSink(receiver.url)])
        with tracer.start_as_current_span("request") as request:
            with dn.run("inside") as run, dn.task_span("parent") as parent:
                context = dn.get_run_context()
                spawn = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    pool.submit(worker_logs, context, 0).result()
        trace_id = f"{request.get_span_context().trace_id:032x}"
        assert trace_id != run.run_id
        spans = receiver.by_name()
        assert spans["worker-0"].trace_id.hex() == trace_id
        assert spans["worker-0"].parent_span_id.hex() == parent.span_id
        assert {span.trace_id.hex() for span in receiver.spans} == {trace_id}


# -- Arize Phoenix: a real OTLP backend, installed beside the test environment ----------


def _phoenix_command() -> str | None:
    """``phoenix`` from $STRIKES_TEST_PHOENIX, this venv, or PATH (its own venv is fine)."""
    explicit = os.environ.get("STRIKES_TEST_PHOENIX")
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("phoenix")
    if beside.exists():
        return str(beside)
    return shutil.which("phoenix")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``phoenix serve`` on loopback with a temporary working directory; its base URL."""
    command = _phoenix_command()
    if command is None:
        pytest.skip("Arize Phoenix is not installed (pip install arize-phoenix)")
    port, grpc_port = _free_port(), _free_port()
    workdir = tmp_path_factory.mktemp("phoenix")
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen(
        [command, "serve"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:  # an external process: poll until it answers (or died, or too slow)
            if process.poll() is not None:
                pytest.fail(f"phoenix exited: {(workdir / 'phoenix.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/v1/projects", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("phoenix did not start within 90 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.mark.slow
class TestPhoenix:
    def test_a_nested_run_arrives_with_its_structure_and_values(self, phoenix: str) -> None:
        """Phoenix stores the run's spans: same tree, attributes and metric values."""
        sink = OTLPSink(
            phoenix,
            metrics="events",
            resource_attributes={"openinference.project.name": "strikes-test"},
        )
        run, ids = nested_run(sink)
        spans: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while len(spans) < 4 and time.monotonic() < deadline:
            # Phoenix accepts an export at once and stores it a moment later: poll for it.
            response = httpx.get(
                f"{phoenix}/v1/projects/strikes-test/spans/otlpv1",
                params={"limit": 100},
                timeout=10,
            )
            if response.status_code == 200:
                spans = {span["name"]: span for span in response.json()["data"]}
            else:
                assert response.status_code == 404, response.text  # project not made yet
            time.sleep(0.2)
        assert set(spans) == {"nested", "outer", "inner", "broken"}
        assert {span["trace_id"] for span in spans.values()} == {run.run_id}
        assert spans["nested"]["span_id"] == run.span_id
        assert spans["outer"]["parent_span_id"] == run.span_id
        assert spans["inner"]["parent_span_id"] == ids["outer"]
        assert spans["broken"]["status"]["code"] == 2

        def attrs(item: dict[str, Any]) -> dict[str, Any]:
            found = {}
            for kv in item.get("attributes") or []:
                value = {k: v for k, v in kv["value"].items() if v is not None}
                found[kv["key"]] = next(iter(value.values()), None)
            return found

        assert attrs(spans["nested"])["params.lr"] == 0.01
        assert attrs(spans["outer"])["inputs.prompt"] == "hello"
        assert attrs(spans["inner"])["outputs.big"].startswith("sha256:")
        losses = [
            attrs(event)["metric.value"]
            for event in spans["outer"]["events"] or []
            if event["name"] == "strikes.metric"
        ]
        assert losses == [1.0, 0.5, 1.0 / 3]
