"""Structured logs: the seed's JSON shape, one access line per request, nothing secret."""

import json
import logging
import os
import sys
import threading

import pytest
from werkzeug.serving import WSGIRequestHandler

from app import create_app
from app.core.logging import REDACTED
from tests.helpers import settings_for_tests


@pytest.fixture
def logged(app, database_url, capsys):
    """A client whose app logs JSON to the captured stderr, and a reader of the lines so far."""
    logging_app = create_app(settings_for_tests(database_url, LOG_FORMAT="json", LOG_LEVEL="INFO"))

    def lines() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]

    return logging_app.test_client(), lines


def test_access_line_per_request(logged):
    client, lines = logged
    response = client.get("/api/v1/health/live?token=abc", headers={"X-Request-ID": "req-1"})

    access = [line for line in lines() if line["logger"] == "app.access"]
    assert len(access) == 1
    line = access[0]
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]
    assert line["message"] == "request" and line["level"] == "info"
    assert (line["method"], line["path"], line["status"], line["request_id"]) == (
        "GET",
        "/api/v1/health/live",
        200,
        "req-1",
    )
    assert isinstance(line["duration_ms"], float)
    assert response.headers["X-Request-ID"] == "req-1"


def test_passwords_and_tokens_never_reach_the_logs(logged):
    client, lines = logged
    client.post("/auth/register", json={"username": "logme", "email": "l@example.com", "password": "pw-in-logs-123"})
    tokens = client.post("/auth/login", json={"username": "logme", "password": "pw-in-logs-123"}).get_json()
    client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})

    text = json.dumps(lines())
    assert "pw-in-logs-123" not in text
    assert tokens["access_token"] not in text and tokens["refresh_token"] not in text


def test_secret_named_fields_are_redacted(logged):
    _client, lines = logged
    logging.getLogger("app.test").info("x", extra={"password": "hunter2", "access_token": "t0k"})
    line = lines()[-1]
    assert line["password"] == REDACTED and line["access_token"] == REDACTED


def test_stdlib_loggers_share_the_format(logged):
    _client, lines = logged
    logging.getLogger("sqlalchemy.engine.Engine").warning("from sqlalchemy")
    logging.getLogger("werkzeug").info("from werkzeug")
    by_logger = {line["logger"]: line for line in lines()}
    assert by_logger["sqlalchemy.engine.Engine"]["message"] == "from sqlalchemy"
    assert by_logger["werkzeug"]["level"] == "info" and "timestamp" in by_logger["werkzeug"]


def test_werkzeug_request_lines_are_dropped_for_ours(logged):
    _client, lines = logged
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)  # no socket needed to log a line
    handler.client_address = ("127.0.0.1", 50000)
    handler.command, handler.path, handler.request_version = "GET", "/x", "HTTP/1.1"

    handler.log_request(200, 12)
    handler.log_error("%s", "a real problem")

    werkzeug_lines = [line["message"] for line in lines() if line["logger"] == "werkzeug"]
    assert len(werkzeug_lines) == 1 and "a real problem" in werkzeug_lines[0]


def test_errors_are_logged_with_their_request_id(app, database_url, capsys):
    failing_app = create_app(settings_for_tests(database_url, LOG_FORMAT="json"))

    @failing_app.get("/boom")
    def boom():
        raise RuntimeError("kaput")

    failing_app.test_client().get("/boom", headers={"X-Request-ID": "boom-1"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    error = next(line for line in lines if line["level"] == "error")
    assert error["request_id"] == "boom-1" and "kaput" in json.dumps(error["exception"])


def test_console_format_in_development(database_url, capsys):
    app = create_app(settings_for_tests(database_url, FLASK_ENV="development", LOG_FORMAT=None))
    app.test_client().get("/api/v1/health/live")
    err = capsys.readouterr().err
    assert "request" in err and not err.lstrip().startswith("{")
    assert "\x1b[" not in err  # no colour codes: captured stderr is no terminal


class _SlowStream:
    """A stderr whose writes last until `finish` is set, and which tells whether one is under way."""

    def __init__(self) -> None:
        self.writing = False
        self.started = threading.Event()
        self.finish = threading.Event()

    def write(self, text: str) -> int:
        self.writing = True
        self.started.set()
        self.finish.wait(10)
        self.writing = False
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_fork_waits_for_the_log_line_another_thread_is_writing(monkeypatch):
    # As in gunicorn's master: a worker is forked while the Nacos registrar's thread logs.
    stream = _SlowStream()
    monkeypatch.setattr(sys, "stderr", stream)
    writer = threading.Thread(target=logging.getLogger("tests").warning, args=("a line",))
    writer.start()
    stream.started.wait(10)
    threading.Timer(0.2, stream.finish.set).start()  # the line ends a little later

    child = os.fork()
    if child == 0:
        os._exit(1 if stream.writing else 0)  # a line half written in the child's copy would never end

    writer.join()
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
