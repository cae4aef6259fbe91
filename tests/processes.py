"""Running servers as real processes on loopback (for the tests, tests/load and bench/), and the
environment every test runs in."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from app.config import ENV_FILE_VARIABLE, SETTING_NAMES

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Random-looking and different: production refuses repeated characters and one key used twice.
SECRETS = {"SECRET_KEY": "tP4-vN8qXw2_Lr6mZc9Hk3Bs7Jd1Fy5G", "JWT_SECRET_KEY": "Qe7_Wm3nRt9-Ka2Vx6Pb4Hz8Lc1Jg5Ds"}


# Variables that configure the service besides its settings: Flask's and gunicorn's own (FLASK_APP,
# GUNICORN_CMD_ARGS), create-admin's ADMIN_*, what the servers hand their children (APP_SERVER_PID,
# PROMETHEUS_MULTIPROC_DIR), and OpenTelemetry's (OTEL_EXPORTER_OTLP_ENDPOINT turns tracing on).
_OTHER_PREFIXES = ("FLASK_", "GUNICORN_", "ADMIN_", "APP_", "PROMETHEUS_", "OTEL_")


def configures_the_service(name: str) -> bool:
    """Whether the variable changes what the service does: a setting (any case, as pydantic-settings
    reads them; the names come from the settings groups, so a new setting is covered) or one of the others."""
    name = name.upper()
    return name in SETTING_NAMES or name == ENV_FILE_VARIABLE or name.startswith(_OTHER_PREFIXES)


def hermetic_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without what configures the service, and with no settings file: ENV_FILE empty for
    the service, FLASK_SKIP_DOTENV for `flask run` (Flask's CLI loads `.env` itself).

    What every test runs in (tests/conftest.py applies it to the test process, and the servers the
    tests start get it): the outcome must not depend on the developer's `.env` or shell. Test
    variables (TEST_DATABASE_URL, CI, ...) pass.
    """
    kept = {name: value for name, value in environ.items() if not configures_the_service(name)}
    return {**kept, ENV_FILE_VARIABLE: "", "FLASK_SKIP_DOTENV": "1"}


def coverage_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """Coverage's own variables in `environ` (COVERAGE_PROCESS_CONFIG under `pytest --cov`): a Python
    process started with them measures its code too ([tool.coverage.run] in pyproject.toml). They
    configure coverage, not the service, so an environment built from scratch passes them on."""
    return {name: value for name, value in environ.items() if name.startswith("COVERAGE_")}


def unmeasured(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without coverage's variables, for a process that repeats what the tests measure
    elsewhere: measuring costs a Python process about 0.7 s of CPU more at its start (Python 3.11's
    tracing slows every line, measured or not)."""
    return {name: value for name, value in environ.items() if not name.startswith("COVERAGE_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_in_background(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server on loopback (port 0: a free one), answering from a thread of its own; the fakes'
    way to serve. Stop it with close_server."""
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def close_server(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def eventually(condition: Callable[[], object], *, timeout: float, interval: float = 0.02) -> bool:
    """Whether the condition held within the timeout, checked every `interval` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


class HalfSentLogin:
    """A login request in flight: headers and part of the body sent, the rest held back until finish()."""

    BODY = b'{"username": "nobody", "password": "whatever"}'

    def __init__(self, port: int) -> None:
        self.connection = socket.create_connection(("127.0.0.1", port))
        self.connection.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(self.BODY)}\r\nConnection: close\r\n\r\n".encode()
            + self.BODY[:10]
        )

    def finish(self) -> str:
        """Send the rest of the body; the start of the answer."""
        self.connection.sendall(self.BODY[10:])
        try:
            return self.connection.recv(4096).decode()
        finally:
            self.connection.close()


STOP_TIMEOUT_SECONDS = 60  # a stopped server that takes longer has its process group killed


def start_process(
    command: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    stdout: IO | int = subprocess.DEVNULL,
    stderr: IO | int = subprocess.DEVNULL,
) -> subprocess.Popen:
    """Start the command in its own session: stop_process's signal then reaches every process it
    starts (gunicorn's workers, the reloader's child) and nothing of the caller's."""
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True, start_new_session=True)


def answers_200(url: str) -> bool:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        return connection.getresponse().status == 200
    except OSError:  # refused, or reset by a server still starting
        return False
    finally:
        connection.close()


def wait_until_serving(process: subprocess.Popen, url: str, *, timeout: float = 30, interval: float = 0.1) -> None:
    """Returns at the URL's first 200; RuntimeError if the process exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr.read() if process.stderr else "see its log"
            raise RuntimeError(f"exited with {process.returncode}: {output}")
        if answers_200(url):
            return
        time.sleep(interval)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop_process(
    process: subprocess.Popen | None, *, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS
) -> None:
    """Send the signal to the process's group and wait for the process; SIGKILL the group if it is
    still there after the timeout. Nothing to do if it has ended already."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signum)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def service_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A migrated SQLite database and the settings of a clean shell without `.env`, plus `extra` (and
    coverage's variables: the server is measured when the tests are)."""
    env = {
        **hermetic_environment({**coverage_variables(os.environ), "PATH": f"{BIN}:/usr/bin:/bin"}),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "ARGON2_MEMORY_COST": "19456",
        "ARGON2_TIME_COST": "2",
        "ARGON2_PARALLELISM": "1",
        **SECRETS,
        **extra,
    }
    subprocess.run(
        [sys.executable, "manage.py", "init-db"],
        cwd=ROOT,
        env={**unmeasured(env), "FLASK_ENV": "testing", "NACOS_ENABLED": "false"},  # tests/test_cli.py measures it
        check=True,
        capture_output=True,
        timeout=60,
    )
    return env


@contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, *, log: IO[str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run the command until it serves on the port; stop_process on the way out.

    Its log (stderr) is a pipe to read afterwards, or the `log` file: a long run must write to a
    file, since a pipe nobody reads fills up and then blocks the server at its next log line.
    """
    process = start_process(command, env=env, stderr=log or subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, f"{base}/api/v1/health/live")
        yield base, process
    finally:
        stop_process(process)


def gunicorn(port: int, *, workers: int = 4) -> list[str]:
    """The README's production command, on a loopback port."""
    return [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "app:create_app()"]
