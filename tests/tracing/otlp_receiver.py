"""A real OTLP/HTTP trace receiver, standing in for the collector: POST /v1/traces with an
`ExportTraceServiceRequest` (protobuf, gzip or not), decoded with the official opentelemetry-proto messages.

In tests: `OtlpReceiver().start()`, its `endpoint` as OTEL_EXPORTER_OTLP_ENDPOINT, then `spans()` or
`wait_for_spans(...)`. Standalone, for the benchmark (a reachable collector):

    python -m tests.tracing.otlp_receiver PORT [--delay SECONDS] [--spans]

prints the running count of spans received after each export, and answers GET /count with
{"spans": N, "exports": M}. --delay holds each answer that long (a slow collector); --spans also
prints each span: trace id, span id, parent span id, service, name, attributes.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.processes import close_server, serve_in_background

TRACES_PATH = "/v1/traces"
SERVER_KIND = Span.SPAN_KIND_SERVER
CLIENT_KIND = Span.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root span
    name: str
    kind: int
    attributes: dict[str, object] = field(default_factory=dict)
    status_code: int = 0
    resource: dict[str, object] = field(default_factory=dict)


def _value(any_value: AnyValue) -> object:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(pairs) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        status_code=span.status.code,
                        resource=resource,
                    )
                )
    return spans


class OtlpReceiver:
    def __init__(
        self,
        *,
        port: int = 0,
        delay: float = 0.0,
        on_export: Callable[[list[ReceivedSpan], int], None] | None = None,
    ) -> None:
        self.port = port
        self.delay = delay  # seconds each export is held before its answer
        self.on_export = on_export  # called with each export's spans and the running count
        self.exports = 0
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """For OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self._server = serve_in_background(Handler, self.port)
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        close_server(server)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for_spans(
        self, condition: Callable[[list[ReceivedSpan]], bool], *, timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """The spans received once `condition` holds for them; AssertionError after the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if condition(spans):
                return spans
            if time.monotonic() >= deadline:
                raise AssertionError(f"spans not received within {timeout}s; got {[s.name for s in spans]}")
            time.sleep(0.05)

    def _received(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)
            self.exports += 1
            total = len(self._spans)
        if self.on_export is not None:
            self.on_export(spans, total)


class _Handler(BaseHTTPRequestHandler):
    owner: OtlpReceiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != TRACES_PATH:
            self._answer(404, b"", "text/plain")
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        try:
            spans = decode(body)
        except DecodeError:
            self._answer(400, b"undecodable ExportTraceServiceRequest", "text/plain")
            return
        if self.owner.delay:
            time.sleep(self.owner.delay)
        self.owner._received(spans)
        self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path != "/count":
            self._answer(404, b"", "text/plain")
            return
        counts = {"spans": len(self.owner.spans()), "exports": self.owner.exports}
        self._answer(200, json.dumps(counts).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass  # quiet: the counts are what a reader wants


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.tracing.otlp_receiver")
    parser.add_argument("port", type=int)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold each export (a slow collector)")
    parser.add_argument("--spans", action="store_true", help="print each span too")
    arguments = parser.parse_args()

    def report(spans: list[ReceivedSpan], total: int) -> None:
        for span in spans if arguments.spans else []:
            service = span.resource.get("service.name")
            print(span.trace_id, span.span_id, span.parent_span_id or "-", service, span.name, span.attributes)
        print(f"spans {total}", flush=True)

    standalone = OtlpReceiver(port=arguments.port, delay=arguments.delay, on_export=report)
    standalone.start()
    print(f"listening on {standalone.endpoint}{TRACES_PATH}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sys.exit(0)
