"""Structured logs: the seed's JSON shape, one access line per request, nothing secret."""

import json
import logging
import os
import sys
import threading

import pytest
from werkzeug.serving import WSGIRequestHandler

import app.services.auth as auth_service
from app import create_app
from app.config import load_settings
from app.core.logging import REDACTED, configure_logging
from tests.helpers import (
    PASSWORD,
    assert_error,
    attempt_login,
    bearer,
    get_user_row,
    login,
    refresh,
    settings_for_tests,
)


@pytest.fixture
def logged(app_with, capsys):
    """A client whose app logs JSON to the captured stderr, and a reader of the lines so far."""
    logging_app = app_with(LOG_FORMAT="json", LOG_LEVEL="INFO")

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


@pytest.fixture(params=["json", "console"])
def logged_everything(request, app_with, database_url, capsys):
    """A client of an app logging everything, SQL too, in each format to the captured stderr; and a reader."""
    client = app_with(LOG_FORMAT=request.param, LOG_LEVEL="DEBUG", LOG_SQL=True).test_client()
    yield client, lambda: capsys.readouterr().err
    configure_logging(load_settings(settings_for_tests(database_url)))  # back to the suite's logging


def test_passwords_hashes_and_tokens_never_reach_the_logs(app, logged_everything):
    client, read_logs = logged_everything
    passwords = ["first passphrase 1", "wrong passphrase 2", "second passphrase 3"]
    body = {"username": "logme", "email": "logme@example.com", "password": passwords[0]}
    logme = client.post("/auth/register", json=body).get_json()["id"]
    attempt_login(client, "logme", passwords[1])
    first = login(client, "logme", passwords[0])
    client.get("/api/v1/users/me?token=in-the-query-string", headers=bearer(first["access_token"]))
    second = refresh(client, first["refresh_token"]).get_json()
    client.put(
        f"/api/v1/users/{logme}",
        json={"password": passwords[2], "current_password": passwords[0]},
        headers=bearer(second["access_token"]),
    )
    assert client.post("/auth/logout", headers=bearer(second["access_token"])).status_code == 204

    logs = read_logs()
    assert "/auth/logout" in logs and "UPDATE users" in logs  # the access and SQL lines were captured
    tokens = [pair[kind] for pair in (first, second) for kind in ("access_token", "refresh_token")]
    for secret in [*passwords, *tokens, get_user_row(app, logme).password_hash, "in-the-query-string"]:
        assert secret not in logs


def test_a_crash_while_holding_a_password_does_not_log_it(logged_everything, make_user, monkeypatch):
    client, read_logs = logged_everything
    make_user("alice")

    def crash(**_kwargs):
        raise RuntimeError("token store broke")

    monkeypatch.setattr(auth_service, "issue_tokens", crash)
    assert_error(attempt_login(client, "alice"), 500, "internal_error")

    logs = read_logs()
    assert "token store broke" in logs  # the traceback is logged...
    assert PASSWORD not in logs  # ...without the local variables of its frames


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


def test_errors_are_logged_with_their_request_id(app_with, capsys):
    failing_app = app_with(LOG_FORMAT="json")

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
