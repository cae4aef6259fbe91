"""The OpenTelemetry SDK in this process (imported only with tracing on): the provider and its OTLP/HTTP
exporter, the propagators, and the instrumentation of Flask, SQLAlchemy, Redis and requests."""

from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import threading
from collections.abc import Callable

import requests
import structlog
from flask import Flask, Response, request
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter

from app.auth.jwt import authenticated_caller
from app.config import Settings
from app.core.compat.opentelemetry import count_dropped_spans, no_connect_spans, shutdown_within
from app.core.metrics import REQUESTS, STANDARD_METHODS, set_exemplar_source
from app.extensions import db
from app.settings_group import ConfigError
from app.tracing import ENDPOINT_VARIABLES

log = structlog.get_logger(__name__)

# Health, liveness and metrics requests come every few seconds from probes and scrapers: no spans.
EXCLUDED_PATHS = (r"/api/v1/health(/live)?/?(\?|$)", r"/monitoring/metrics/?(\?|$)")
# Shorter than the specification's 10 s (OTEL_EXPORTER_OTLP_TIMEOUT still says otherwise): a slow
# collector holds only the exporting thread, but that thread is what a stopping worker waits for.
EXPORT_TIMEOUT_SECONDS = 3.0
# How long a stopping process waits for its last spans to reach a collector that was answering.
FLUSH_AT_STOP_SECONDS = 2.0
ENDUSER_ID = "enduser.id"
HTTP_TARGET = "http.target"  # the instrumentation's, with the query string

SPANS_DROPPED = Counter(
    "tracing_spans_dropped", "Spans never sent to the trace collector", ["reason"], registry=REQUESTS
)


class _CollectorSession(requests.Session):
    """The exporter's HTTP session, noting whether the collector's last answer was a failure: a
    refused or timed-out connection, an error status. The exporter retries such failures for up to
    its timeout; a stopping process does not wait for those retries."""

    failing = False
    give_up: Callable[[], None] | None = None  # set by a stop: ends the exporter's retries

    def send(self, prepared, **kwargs) -> requests.Response:
        try:
            response = super().send(prepared, **kwargs)
        except requests.RequestException:
            self._failed()
            raise
        if not response.ok:
            self._failed()
        else:
            self.failing = False
        return response

    def _failed(self) -> None:
        self.failing = True
        if self.give_up is not None:
            self.give_up()


class _CountingExporter(SpanExporter):
    """The OTLP exporter, counting the spans of each batch the collector did not take."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans) -> SpanExportResult:
        result = self.exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            _count_dropped(len(spans), "export_failed")
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class _IncomingB3(B3MultiFormat):
    """B3, single or multi header, read from every request (Spring Boot 2 / Sleuth callers), but sent
    on only when OTEL_PROPAGATORS names b3 or b3multi."""

    def inject(self, carrier, context=None, setter=None) -> None:
        return

    @property
    def fields(self) -> set[str]:
        return set()


class _InRequestsOnly(Sampler):
    """The configured sampler (OTEL_TRACES_SAMPLER) for requests and what they do; nothing for work
    outside a traced request (the statements of a health check or of `manage.py init-db`): a trace
    of its own for each would be noise."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        has_parent = trace.get_current_span(parent_context).get_span_context().is_valid
        if kind is not SpanKind.SERVER and not has_parent:
            return SamplingResult(Decision.DROP)
        return self.sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"InRequestsOnly{{{self.sampler.get_description()}}}"


_lock = threading.Lock()
_reported_drops = False
_processor: BatchSpanProcessor | None = None
_exporter: OTLPSpanExporter | None = None
_session = _CollectorSession()


def _count_dropped(count: int, reason: str) -> None:
    global _reported_drops
    SPANS_DROPPED.labels(reason).inc(count)
    if not _reported_drops:  # once per process: the counter has the rest
        _reported_drops = True
        log.warning("spans dropped: the trace collector is unreachable or too slow", reason=reason)


def start(settings: Settings, *, version: str) -> None:
    """The SDK, once per process; configured by the OTEL_* variables as the specification says."""
    global _processor, _exporter
    with _lock:
        if _processor is not None:
            return
        _check_endpoints()
        timeout_set = _variable_set("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
        timeout = None if timeout_set else EXPORT_TIMEOUT_SECONDS
        _exporter = OTLPSpanExporter(timeout=timeout, session=_session)
        # A bounded queue: OTEL_BSP_MAX_QUEUE_SIZE, 2048 spans by default.
        _processor = BatchSpanProcessor(_CountingExporter(_exporter))
        count_dropped_spans(_processor, _count_dropped)
        provider = TracerProvider(resource=_resource(settings, version=version), shutdown_on_exit=False)
        provider.sampler = _InRequestsOnly(provider.sampler)  # the one OTEL_TRACES_SAMPLER names
        provider.add_span_processor(_processor)
        trace.set_tracer_provider(provider)
        propagate.set_global_textmap(_propagator())
        # Each failed batch is counted and the first reported (above), not logged per batch or per span.
        logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
        logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
        set_exemplar_source(_exemplar)
        atexit.register(stop)  # the development servers; gunicorn's workers stop it in worker_exit


def stop() -> None:
    """Send what is queued, waiting at most FLUSH_AT_STOP_SECONDS, and not for the exporter's
    retries once the collector fails (before or during the wait): a stop takes as long as with
    tracing off. What could not be sent is counted as dropped."""
    if _processor is None or _exporter is None:
        return
    _session.give_up = _exporter.shutdown  # ends its retries; its later exports fail at once
    if _session.failing:
        _exporter.shutdown()
    shutdown_within(_processor, FLUSH_AT_STOP_SECONDS)


def instrument(app: Flask, settings: Settings) -> None:
    """Spans for the app's requests and for what they do: SQL statements (never their parameters),
    Redis commands (their arguments replaced by `?`), outbound HTTP (but not to Nacos)."""
    untraced = app.wsgi_app
    FlaskInstrumentor().instrument_app(
        app,
        excluded_urls=_excluded("OTEL_PYTHON_FLASK_EXCLUDED_URLS", EXCLUDED_PATHS),
        request_hook=_join_logs,
        enable_commenter=False,
    )
    app.wsgi_app = _untraced_when_excluded(traced=app.wsgi_app, untraced=untraced)
    app.after_request(_finish_the_span)
    with app.app_context():
        SQLAlchemyInstrumentor().instrument(engines=list(db.engines.values()))
    no_connect_spans()  # a span for each statement, none for taking a connection from the pool
    RedisInstrumentor().instrument()
    # Registration, heartbeats, configuration polls and instance lookups talk to Nacos all the time.
    nacos = [rf"^{re.escape(_base_url(address))}/" for address in settings.nacos.NACOS_SERVER_ADDR]
    RequestsInstrumentor().instrument(excluded_urls=_excluded("OTEL_PYTHON_REQUESTS_EXCLUDED_URLS", nacos))


def _untraced_when_excluded(*, traced: Callable, untraced: Callable) -> Callable:
    """The instrumentation's WSGI wrapper makes no span for an excluded URL, but it still reads the
    request's attributes and counts it, which cost probes and scrapers a fifth more CPU per request:
    requests for our excluded paths skip it. (Paths the user excludes go through it, excluded there.)"""
    excluded = re.compile("|".join(EXCLUDED_PATHS))

    def wsgi_app(environ, start_response):
        query = environ.get("QUERY_STRING")
        url = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        return (untraced if excluded.search(url) else traced)(environ, start_response)

    return wsgi_app


def _join_logs(span: Span, _environ) -> None:
    """Every log line of the request carries its trace and span ids (the request id is bound already)."""
    context = span.get_span_context()
    if context.is_valid:
        structlog.contextvars.bind_contextvars(
            trace_id=trace.format_trace_id(context.trace_id), span_id=trace.format_span_id(context.span_id)
        )


def _finish_the_span(response: Response) -> Response:
    """The path without the query string (it may carry a token); for a path no route matches, the
    method alone as the name (the instrumentation would use the raw path: one name per path sent);
    and who the request was for once authenticated: the user id only, never an email or a token."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(HTTP_TARGET, request.path)
        if request.url_rule is None:
            span.update_name(request.method if request.method in STANDARD_METHODS else "HTTP")
        if (caller := authenticated_caller()) is not None:
            span.set_attribute(ENDUSER_ID, str(caller.id))
    return response


def _exemplar() -> dict[str, str] | None:
    context = trace.get_current_span().get_span_context()
    return {"trace_id": trace.format_trace_id(context.trace_id)} if context.trace_flags.sampled else None


def _resource(settings: Settings, *, version: str) -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; else the Nacos service name, this version,
    and this process as the instance."""
    configured = Resource.create()
    defaults = {
        SERVICE_NAME: settings.nacos.NACOS_SERVICE_NAME,
        SERVICE_VERSION: version,
        SERVICE_INSTANCE_ID: f"{socket.gethostname()}:{os.getpid()}",
    }
    named = not configured.attributes[SERVICE_NAME].startswith("unknown_service")
    missing = {key: value for key, value in defaults.items() if key not in configured.attributes}
    if not named:
        missing[SERVICE_NAME] = defaults[SERVICE_NAME]
    return configured.merge(Resource(missing))


def _propagator() -> CompositePropagator:
    """W3C trace context always, and what OTEL_PROPAGATORS adds (b3, b3multi, baggage...); B3 read
    from requests in any case. Read last, W3C's traceparent wins when a caller sends both."""
    configured = propagate.get_global_textmap()
    names = {name.strip() for name in os.environ.get("OTEL_PROPAGATORS", "tracecontext").split(",")}
    extra = [] if "tracecontext" in names else [TraceContextTextMapPropagator()]
    return CompositePropagator([_IncomingB3(), *extra, configured])


def _excluded(variable: str, patterns) -> str:
    """Our URL patterns and the user's (the instrumentation's own variable, or the shared one)."""
    theirs = os.environ.get(variable) or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS") or ""
    return ",".join([*patterns, *([theirs] if theirs.strip() else [])])


def _base_url(address: str) -> str:
    return address.rstrip("/") if "://" in address else f"http://{address.rstrip('/')}"


def _variable_set(*names: str) -> bool:
    return any(os.environ.get(name, "").strip() for name in names)


def _check_endpoints() -> None:
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ConfigError(f"{name}: an http:// or https:// URL is needed (OTLP over HTTP), not {value!r}")
