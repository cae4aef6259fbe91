"""The library internals app/core/compat/ relies on, checked against the installed versions: a pin
bumped to a version that removed or changed one fails here, naming the library and the internal."""

import inspect
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
from flask import Flask
from flask.cli import run_command
from flask_limiter import Limiter
from flask_openapi3 import OpenAPI
from gunicorn.config import Config
from gunicorn.workers.gthread import ThreadWorker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from pydantic import BaseModel, field_validator
from werkzeug import serving

from app.core.compat import stdlib_logging
from app.core.compat import werkzeug as werkzeug_compat
from app.core.compat.click import flask_run_context
from app.core.compat.flask_limiter import hook_only_limited_requests
from app.core.compat.flask_openapi3 import validated
from app.core.compat.gunicorn import accept_queued
from app.core.compat.opentelemetry import count_dropped_spans, no_connect_spans, shutdown_within
from app.core.compat.prometheus_client import add_file_into
from tests.processes import ROOT


def changed(library: str, internal: str, what: str) -> str:
    return f"{library} changed {internal}: {what}; see app/core/compat/ before bumping its pin"


def test_flask_openapi3_validation_inside_a_decorator():
    from flask_openapi3 import request as openapi_request

    assert hasattr(openapi_request, "_validate_request"), changed(
        "flask-openapi3", "flask_openapi3.request._validate_request", "it is gone"
    )
    parameters = list(inspect.signature(openapi_request._validate_request).parameters)
    assert parameters == ["header", "cookie", "path", "query", "form", "body", "raw", "path_kwargs"], changed(
        "flask-openapi3", "_validate_request", f"its parameters are now {parameters}"
    )

    validations = []

    class Query(BaseModel):
        n: int

        @field_validator("n")
        @classmethod
        def counted(cls, value: int) -> int:
            validations.append(value)
            return value

    app = OpenAPI(__name__, validation_error_status=422)

    @app.get("/numbers")
    @validated
    def numbers(query: Query):
        return {"n": query.n}

    client = app.test_client()
    response = client.get("/numbers?n=7")
    assert response.status_code == 200 and response.get_json() == {"n": 7}, changed(
        "flask-openapi3", "_validate_request", f"a valid query gave {response.status_code}"
    )
    assert validations == [7], changed(
        "flask-openapi3",
        "__delay_validate_request__",
        f"the view was validated {len(validations)} times (the mark no longer stops its own validation)",
    )
    assert client.get("/numbers?n=seven").status_code == 422, changed(
        "flask-openapi3", "_validate_request", "an invalid query no longer answers validation_error_status"
    )


def test_prometheus_client_file_format(tmp_path):
    key = mmap_key("jobs_total", "jobs_total", ["queue"], ["mail"], "Jobs done")
    dead = tmp_path / "counter_123.db"
    written = MmapedDict(str(dead))
    written.write_value(key, 3.0, 0.0)
    written.close()
    archive = tmp_path / "counter_archive.db"

    add_file_into(dead, archive=archive)
    add_file_into(dead, archive=archive)
    dead.unlink()

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    assert registry.get_sample_value("jobs_total", {"queue": "mail"}) == 6.0, changed(
        "prometheus_client", "the MmapedDict file format", "an archived file no longer reads back as its sum"
    )


def test_stdlib_logging_caller_lookup_off(monkeypatch):
    assert hasattr(logging, "_srcfile"), changed("Python's logging", "logging._srcfile", "it is gone")
    monkeypatch.setattr(logging, "_srcfile", logging._srcfile)  # restored after the test
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tests.compat")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    try:
        stdlib_logging.skip_caller_lookup()
        logger.warning("where from?")
    finally:
        logger.removeHandler(handler)

    assert records[0].pathname == "(unknown file)", changed(
        "Python's logging", "logging._srcfile", "setting it to None no longer skips the caller lookup"
    )


def test_flask_limiter_hooks_only_on_limited_requests():
    app = Flask(__name__)
    limiter = Limiter(key_func=lambda: "client", storage_uri="memory://", headers_enabled=True)
    app.get("/free", endpoint="free")(lambda: "free")
    app.get("/limited", endpoint="limited")(limiter.limit("1 per minute")(lambda: "limited"))
    limiter.init_app(app)
    try:
        hook_only_limited_requests(app, limiter)
    except (ValueError, AttributeError) as exc:
        pytest.fail(changed("Flask-Limiter", "the request hooks init_app registers", f"not found ({exc})"))
    client = app.test_client()

    assert "X-RateLimit-Limit" not in client.get("/free").headers
    limited = client.get("/limited")
    assert limited.headers.get("X-RateLimit-Limit") == "1", changed(
        "Flask-Limiter", "its per-request state on the request context", "a checked limit no longer makes it"
    )
    assert client.get("/limited").status_code == 429


def test_gunicorn_thread_worker_takes_in_queued_connections(tmp_path):
    for internal in ("accept", "set_accept_enabled"):
        assert callable(getattr(ThreadWorker, internal, None)), changed("gunicorn", f"ThreadWorker.{internal}", "gone")
    assert list(inspect.signature(ThreadWorker.accept).parameters) == ["self", "listener"], changed(
        "gunicorn", "ThreadWorker.accept", "its parameters changed"
    )
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)  # as the worker's listeners are
    clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
    worker = ThreadWorker(0, 0, [listener], None, 30, Config(), logging.getLogger("tests.compat"))
    taken_in = []
    worker.enqueue_req = taken_in.append  # instead of the thread pool, which is not started here
    try:
        accept_queued(worker, listener)

        assert (worker.nr_conns, len(taken_in)) == (2, 2), changed(
            "gunicorn", "ThreadWorker.nr_conns/accept", "accept no longer counts each connection it takes in"
        )
    finally:
        for connection in [*clients, *(conn.sock for conn in taken_in), listener]:
            connection.close()


def test_flask_run_options_from_clicks_context():
    names = {parameter.name for parameter in run_command.params}
    assert run_command.name == "run" and {"port", "reload", "debugger"} <= names, changed(
        "Flask", "the `flask run` command", f"it is named {run_command.name!r} with parameters {sorted(names)}"
    )
    assert flask_run_context() is None

    with run_command.make_context("run", ["--port", "5123", "--no-reload"]) as context:
        found = flask_run_context()

    assert found is context and (found.params["port"], found.params["reload"]) == (5123, False), changed(
        "click", "the current context", "it no longer holds `flask run`'s options"
    )


def test_werkzeug_start_lines_without_colour(monkeypatch):
    assert hasattr(serving, "_log_add_style"), changed("Werkzeug", "werkzeug.serving._log_add_style", "it is gone")
    monkeypatch.setattr(serving, "_log_add_style", True)  # restored after the test
    werkzeug_compat.plain_start_lines()
    assert serving._ansi_style("Press CTRL+C to quit", "yellow") == "Press CTRL+C to quit", changed(
        "Werkzeug", "werkzeug.serving._log_add_style", "turning it off no longer drops the colour codes"
    )


def test_werkzeug_reloader_starting_its_child_is_seen(tmp_path):
    # Audit hooks cannot be removed, so in a process of its own.
    script = tmp_path / "reloading.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from werkzeug._reloader import ReloaderLoop
            from app.core.compat.werkzeug import when_the_reloader_starts_its_child

            if os.environ.get("WERKZEUG_RUN_MAIN") == "true":
                print("child serving", flush=True)
            else:
                when_the_reloader_starts_its_child(lambda: print("child seen", flush=True))
                raise SystemExit(ReloaderLoop().restart_with_reloader())
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the test process' environment is hermetic
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout.split() == ["child", "seen", "child", "serving"], changed(
        "Werkzeug",
        "the reloader starting its child (subprocess with WERKZEUG_RUN_MAIN=true)",
        result.stdout + result.stderr,
    )


class _StuckCollector(SpanExporter):
    """An export that does not return until released: a collector that does not answer."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_opentelemetry_batch_processor_reports_drops_and_stops_in_bounded_time():
    collector = _StuckCollector()
    processor = BatchSpanProcessor(collector, max_queue_size=2, max_export_batch_size=1, schedule_delay_millis=1)
    drops: list[tuple[int, str]] = []
    count_dropped_spans(processor, lambda count, reason: drops.append((count, reason)))
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(__name__)
    for _ in range(10):  # one in the stuck export, two queued, the rest dropped
        tracer.start_span("work").end()
    assert "queue_full" in {reason for _, reason in drops}, changed(
        "opentelemetry-sdk", "BatchProcessor._metrics.drop_items", f"no drop was reported: {drops}"
    )

    stopping = threading.Thread(target=shutdown_within, args=(processor, 0.2))
    stopping.start()
    stopping.join(10)  # generous: the public shutdown() would wait 30 s for the stuck export
    stuck = stopping.is_alive()
    collector.release.set()
    assert not stuck, changed("opentelemetry-sdk", "BatchProcessor.shutdown(timeout_millis)", "it did not return")


@pytest.mark.parametrize(
    "module",
    ["flask_openapi3", "prometheus_client", "stdlib_logging", "gunicorn", "click", "werkzeug", "opentelemetry"],
)
def test_each_compat_module_names_its_pinned_version(module):
    import importlib

    docstring = importlib.import_module(f"app.core.compat.{module}").__doc__ or ""
    assert "pinned" in docstring or "Python 3." in docstring


def test_opentelemetry_sqlalchemy_connect_spans_can_be_undone():
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from sqlalchemy.engine.base import Engine

    def wrapped() -> bool:
        return hasattr(Engine.__dict__["connect"], "__wrapped__")

    instrumentor = SQLAlchemyInstrumentor()
    was_instrumented = instrumentor.is_instrumented_by_opentelemetry
    if not was_instrumented:
        instrumentor.instrument()
    try:
        if not was_instrumented:
            assert wrapped(), changed(
                "opentelemetry-instrumentation-sqlalchemy", "instrument()", "Engine.connect is no longer wrapped"
            )
        no_connect_spans()
        assert not wrapped(), changed("opentelemetry-instrumentation", "utils.unwrap", "it left the wrapper")
    finally:
        if not was_instrumented:
            instrumentor.uninstrument()
