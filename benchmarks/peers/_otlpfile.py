"""A span exporter writing OTLP protobuf to a local file: OpenTelemetry's own wire format.

The Python SDK ships no file exporter but ``ConsoleSpanExporter`` (indented JSON per span,
slower than this); the Collector's ``file`` exporter writes OTLP, so this is the closest
stand-in. Each export call writes one ``ExportTraceServiceRequest``, length-prefixed.
Used by the OpenTelemetry and Logfire workers (both venvs have
``opentelemetry-exporter-otlp-proto-common``).
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class OTLPFileSpanExporter(SpanExporter):
    def __init__(self, path):
        self.path = path
        self._handle = Path(path).open("ab")  # noqa: SIM115 - closed in shutdown
        self._lock = threading.Lock()
        self.spans = 0

    def export(self, spans):
        data = encode_spans(spans).SerializeToString()
        with self._lock:
            self._handle.write(struct.pack("<I", len(data)))
            self._handle.write(data)
            self._handle.flush()  # in the file (the OS has it): survives the process dying
            self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis=30000):
        return True

    def shutdown(self):
        with self._lock:
            self._handle.close()


def read_requests(path):
    """Yield every ExportTraceServiceRequest in a file written by the exporter."""
    data = Path(path).read_bytes()
    offset = 0
    while offset + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        request = ExportTraceServiceRequest()
        request.ParseFromString(data[offset : offset + size])
        offset += size
        yield request


def spans_in(path):
    for request in read_requests(path):
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                yield from scope_spans.spans
