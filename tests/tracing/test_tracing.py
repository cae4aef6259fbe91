"""Tracing, end to end: real servers export to a real OTLP/HTTP receiver (otlp_receiver.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.tracing import tracing_enabled
from tests.helpers import PASSWORD, REDIS_URL
from tests.nacos.fake_nacos import FakeNacos
from tests.processes import ROOT, eventually, free_port, gunicorn, service_environment, serving, stop_process
from tests.tracing.otlp_receiver import CLIENT_KIND, SERVER_KIND, OtlpReceiver, ReceivedSpan

# A Spring Boot 3 caller's context (W3C), and a Spring Boot 2 / Sleuth caller's (B3).
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
B3_TRACE_ID = "80f198ee56343ba864fe8b2a57d3eff7"
B3_SPAN_ID = "e457b5a2e4d86bd1"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver().start()
    yield started
    started.stop()


def traced(env: dict[str, str], receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    """The service's environment with tracing on, exporting to the receiver every 100 ms."""
    return {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", **extra}


@pytest.fixture
def environment(tmp_path: Path, app, database_url: str) -> dict[str, str]:
    """The test database (SQLite, or TEST_DATABASE_URL's; emptied after the test by the `app` fixture)."""
    return service_environment(
        tmp_path, DATABASE_URL=database_url, NACOS_ENABLED="false", LOG_FORMAT="json", RATE_LIMIT_ALLOW_MEMORY="true"
    )


def register_and_login(base: str, headers: dict[str, str] | None = None) -> str:
    user = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert requests.post(f"{base}/auth/register", json=user, headers=headers, timeout=10).status_code == 201
    login = requests.post(f"{base}/auth/login", json={"username": "alice", "password": PASSWORD}, timeout=10)
    return login.json()["access_token"]


def server_spans(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.kind == SERVER_KIND and s.name == name]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id and s.trace_id == parent.trace_id]


def test_a_w3c_caller_gets_a_child_span_named_by_route_with_its_statements_and_user_and_logs(
    environment, receiver, tmp_path
):
    port = free_port()
    log = (tmp_path / "server.log").open("w+")
    with serving([sys.executable, "run.py"], traced({**environment, "PORT": str(port)}, receiver), port, log=log) as (
        base,
        _process,
    ):
        token = register_and_login(base)
        me = requests.get(f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        user_id = me.json()["id"]
        headers = {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE", "Authorization": f"Bearer {token}"}
        answer = requests.get(f"{base}/api/v1/users/{user_id}?access_token={token}", headers=headers, timeout=10)
        assert answer.status_code == 200
        for path in ("/api/v1/health", "/api/v1/health/live", "/monitoring/metrics"):
            assert requests.get(f"{base}{path}", headers={"traceparent": TRACEPARENT}, timeout=10).ok

        route = "GET /api/v1/users/<int:user_id>"
        spans = receiver.wait_for_spans(lambda spans: server_spans(spans, route))
        (span,) = server_spans(spans, route)
        assert (span.trace_id, span.parent_span_id) == (TRACE_ID, CALLER_SPAN_ID)
        assert span.attributes["http.route"] == "/api/v1/users/<int:user_id>"
        assert span.attributes["http.status_code"] == 200
        assert span.attributes["enduser.id"] == str(user_id)
        assert span.attributes["http.target"] == f"/api/v1/users/{user_id}"
        assert span.resource["service.name"] == "flask-api"
        assert {"service.version", "service.instance.id"} <= span.resource.keys()
        statements = [s.attributes.get("db.statement", "") for s in children(spans, span)]
        assert any(statement.startswith("SELECT") for statement in statements)
        assert all(statements), "a span for each statement, none for taking a connection from the pool"

        # Probes and scrapers make no spans, and no statement runs outside a request's trace.
        assert not [s for s in spans if "/health" in s.name or "/monitoring" in s.name]
        assert not [s for s in spans if s.parent_span_id == "" and s.kind != SERVER_KIND]
        # No email, token or password in any span.
        everything = json.dumps([s.attributes for s in spans])
        assert "alice@example.com" not in everything and token not in everything and PASSWORD not in everything

    log.seek(0)
    lines = [json.loads(line) for line in log if line.startswith("{")]
    access = [line for line in lines if line.get("path") == f"/api/v1/users/{user_id}"]
    assert access and access[0]["trace_id"] == TRACE_ID and access[0]["span_id"] == span.span_id


def test_b3_callers_single_and_multi_header_a_request_without_context_and_redis_commands(environment, receiver):
    port = free_port()
    # Rate limits counted in Redis: a login's checks are Redis commands. A key prefix of this run only.
    redis = {"REDIS_URL": REDIS_URL, "NACOS_SERVICE_NAME": f"test-{uuid.uuid4()}"}
    env = traced({**environment, **redis, "PORT": str(port)}, receiver)
    with serving([sys.executable, "run.py"], env, port) as (base, _):
        login = {"username": "nobody", "password": "not-the-password"}
        single_header = {"b3": f"{B3_TRACE_ID}-{B3_SPAN_ID}-1"}
        requests.post(f"{base}/auth/login", json=login, headers=single_header, timeout=10)
        multi = {"X-B3-TraceId": TRACE_ID, "X-B3-SpanId": CALLER_SPAN_ID, "X-B3-Sampled": "1"}
        requests.get(f"{base}/api/v1/users/1", headers=multi, timeout=10)
        requests.get(f"{base}/api/v1/users/me", timeout=10)
        requests.get(f"{base}/no/such/path/12345?token=x", headers=multi, timeout=10)

        spans = receiver.wait_for_spans(lambda spans: len([s for s in spans if s.kind == SERVER_KIND]) == 4)
        (single,) = server_spans(spans, "POST /auth/login")
        assert (single.trace_id, single.parent_span_id) == (B3_TRACE_ID, B3_SPAN_ID)
        (from_multi,) = server_spans(spans, "GET /api/v1/users/<int:user_id>")
        assert (from_multi.trace_id, from_multi.parent_span_id) == (TRACE_ID, CALLER_SPAN_ID)
        assert from_multi.attributes["http.status_code"] == 401
        (new,) = server_spans(spans, "GET /api/v1/users/me")
        assert new.parent_span_id == "" and new.trace_id not in (TRACE_ID, B3_TRACE_ID)
        (unmatched,) = server_spans(spans, "GET")  # never the raw path
        assert unmatched.attributes["http.status_code"] == 404
        redis_spans = [s for s in children(spans, single) if s.attributes.get("db.system") == "redis"]
        commands = [s.attributes["db.statement"] for s in redis_spans]
        assert commands and all(set(command.split()[1:]) <= {"?"} for command in commands)  # no keys or values


# Service A, in a process of its own: an app with a route calling service B through call_service.
CALLER_SCRIPT = """
import sys
from app import create_app
from app.nacos import call_service
from app.tracing import stop_tracing

app = create_app()

@app.get("/call-b")
def call_b():
    return {"status": call_service("service-b", "GET", "/api/v1/users/me").status_code}

answer = app.test_client().get("/call-b", headers={"traceparent": sys.argv[1]})
print(answer.get_json()["status"])
stop_tracing()
"""


def test_call_service_carries_the_context_to_the_next_service(environment, receiver, tmp_path):
    nacos = FakeNacos().start()
    try:
        nacos_env = {"NACOS_ENABLED": "true", "NACOS_SERVER_ADDR": nacos.address, "NACOS_SERVICE_IP": "127.0.0.1"}
        port = free_port()
        env_b = traced({**environment, **nacos_env, "PORT": str(port), "NACOS_SERVICE_NAME": "service-b"}, receiver)
        with serving([sys.executable, "run.py"], env_b, port):
            assert nacos.hosts("service-b")
            env_a = traced({**environment, **nacos_env, "NACOS_SERVICE_NAME": "service-a"}, receiver, B3="")
            caller = subprocess.run(
                [sys.executable, "-c", CALLER_SCRIPT, TRACEPARENT],
                cwd=ROOT,
                env={**env_a, "OTEL_PROPAGATORS": "tracecontext,baggage,b3multi"},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert caller.stdout.split()[-1] == "401"  # B answered (no token sent)
            spans = receiver.wait_for_spans(lambda spans: server_spans(spans, "GET /api/v1/users/me"))
    finally:
        nacos.stop()

    (a_server,) = server_spans(spans, "GET /call-b")
    assert a_server.resource["service.name"] == "service-a" and a_server.parent_span_id == CALLER_SPAN_ID
    (a_client,) = [s for s in children(spans, a_server) if s.kind == CLIENT_KIND and s.name == "GET"]
    (b_server,) = server_spans(spans, "GET /api/v1/users/me")
    assert b_server.resource["service.name"] == "service-b"
    assert (b_server.trace_id, b_server.parent_span_id) == (TRACE_ID, a_client.span_id)
    # Nacos' registration, heartbeats and instance lookups made no spans.
    assert not [s for s in spans if nacos.address in json.dumps(s.attributes)]


def test_under_gunicorn_with_recycled_workers_every_span_arrives_and_latencies_carry_exemplars(environment, receiver):
    port = free_port()
    env = traced({**environment, "GUNICORN_MAX_REQUESTS": "5", "GUNICORN_MAX_REQUESTS_JITTER": "0"}, receiver)
    sent = 60
    with serving(gunicorn(port, workers=4), env, port) as (base, _process):
        for number in range(1, sent + 1):
            headers = {"traceparent": f"00-{TRACE_ID}-{number:016x}-01"}
            assert requests.get(f"{base}/api/v1/users/{number}", headers=headers, timeout=10).status_code == 401
        # Each worker writes its exemplars about once a second (and as it exits); any worker answers.
        assert eventually(lambda: f'# {{trace_id="{TRACE_ID}"}}' in openmetrics(base), timeout=30, interval=0.2)
    route = "GET /api/v1/users/<int:user_id>"
    spans = receiver.wait_for_spans(lambda spans: len(server_spans(spans, route)) >= sent)
    assert sorted(int(s.parent_span_id, 16) for s in server_spans(spans, route)) == list(range(1, sent + 1))


def openmetrics(base: str) -> str:
    answer = requests.get(f"{base}/monitoring/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10)
    assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
    return answer.text


def test_the_development_server_puts_exemplars_in_openmetrics_only(environment, receiver):
    port = free_port()
    with serving([sys.executable, "run.py"], traced({**environment, "PORT": str(port)}, receiver), port) as (base, _):
        requests.get(f"{base}/api/v1/users", headers={"traceparent": TRACEPARENT}, timeout=10)
        exposition = openmetrics(base)
        prometheus = requests.get(f"{base}/monitoring/metrics", timeout=10).text
    bucket_lines = [line for line in exposition.splitlines() if 'route="/api/v1/users"' in line and "_bucket" in line]
    assert any(f'# {{trace_id="{TRACE_ID}"}}' in line for line in bucket_lines)
    assert "trace_id" not in prometheus


def test_with_the_collector_down_requests_succeed_drops_are_counted_and_reported_once(environment, receiver, tmp_path):
    receiver.stop()  # its port now refuses connections
    port = free_port()
    env = traced(environment, receiver, OTEL_BSP_MAX_QUEUE_SIZE="8", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4")
    log = (tmp_path / "server.log").open("w+")
    with serving(gunicorn(port, workers=2), env, port, log=log) as (base, process):
        for _ in range(40):
            answer = requests.get(f"{base}/api/v1/users", headers={"traceparent": TRACEPARENT}, timeout=10)
            assert answer.status_code == 401  # answered as usual: it asks for a token
        counted = 'tracing_spans_dropped_total{reason="export_failed"}'
        assert eventually(lambda: counted in requests.get(f"{base}/monitoring/metrics", timeout=10).text, timeout=30)
        stop_process(process, timeout=30)  # a generous bound: the stop must not hang on the collector
        assert process.returncode == 0
    log.seek(0)
    reports = [line for line in log if "spans dropped" in line]
    assert 1 <= len(reports) <= 2  # once per worker at most, never once per span


def test_tracing_off_starts_no_tracing_code_and_adds_no_hooks(environment):
    # redis imports parts of OpenTelemetry's metrics SDK whenever it is installed (for metrics of its
    # own, off unless asked for); no tracing SDK, instrumentation, exporter or propagator is loaded.
    script = textwrap.dedent("""
        import sys
        from app import create_app
        app = create_app()
        assert app.test_client().get("/api/v1/users").status_code == 401
        tracing = ("app.tracing.sdk", "opentelemetry.sdk.trace", "opentelemetry.instrumentation",
                   "opentelemetry.exporter", "opentelemetry.propagate", "opentelemetry.propagators")
        loaded = [name for name in sys.modules if name.startswith(tracing)]
        hooks = [*app.before_request_funcs[None], *app.after_request_funcs[None], *app.teardown_request_funcs[None]]
        ours = [repr(hook) for hook in [*hooks, app.wsgi_app] if "opentelemetry" in repr(hook)]
        print(loaded, ours)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[] []", result.stderr


@pytest.mark.parametrize(
    ("variables", "line"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "Configuration error: OTEL_EXPORTER_OTLP_ENDPOINT: "),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_PROPAGATORS": "tracecontext,zipkin9"},
            "Configuration error: OTEL_PROPAGATORS: ",
        ),
    ],
)
def test_a_bad_tracing_variable_stops_the_start_with_one_line(environment, variables, line):
    result = subprocess.run(
        [sys.executable, "-c", "from app import create_app; create_app()"],
        cwd=ROOT,
        env={**environment, **variables},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(line)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variables", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),  # Compose's ${OTEL_EXPORTER_OTLP_ENDPOINT:-}
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_the_standard_variables_turn_tracing_on_and_off(variables, enabled):
    assert tracing_enabled(variables) is enabled
