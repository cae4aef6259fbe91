"""The seed's ways of serving, as real processes on loopback: gunicorn, `python run.py`, `flask run`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRETS = {"SECRET_KEY": "p" * 40, "JWT_SECRET_KEY": "q" * 40}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}: {process.stderr.read()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    """A migrated SQLite database and the settings of a clean shell."""
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "ARGON2_MEMORY_COST": "19456",
        "ARGON2_TIME_COST": "2",
        "ARGON2_PARALLELISM": "1",
        "NACOS_ENABLED": "false",  # Nacos has its own process tests (tests/discovery)
        **SECRETS,
    }
    subprocess.run(
        [sys.executable, "manage.py", "init-db"],
        cwd=ROOT,
        env={**env, "FLASK_ENV": "testing"},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return env


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int) -> Iterator[tuple[str, subprocess.Popen]]:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, f"{base}/api/v1/health/live")
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def exercise(base: str) -> None:
    """The seed's curl examples, over real HTTP."""
    user = {"username": "testuser", "email": "test@example.com", "password": "password123"}
    assert requests.post(f"{base}/auth/register", json=user, timeout=10).status_code == 201
    login = requests.post(f"{base}/auth/login", json={"username": "testuser", "password": "password123"}, timeout=10)
    assert login.status_code == 200
    token = login.json()["access_token"]
    users = requests.get(f"{base}/api/v1/users", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert users.status_code == 200 and users.json()["total"] == 1
    assert requests.get(f"{base}/api/v1/health", timeout=10).json()["status"] == "ok"


def test_gunicorn_production_line_with_four_workers(environment):
    port = free_port()
    command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "4", "app:create_app()"]
    with serving(command, {**environment, "FLASK_ENV": "production"}, port) as (base, process):
        exercise(base)
        # Every worker shares the secrets and the database: tokens work whichever worker answers.
        token = requests.post(
            f"{base}/auth/login", json={"username": "testuser", "password": "password123"}, timeout=10
        ).json()["access_token"]
        for _ in range(12):
            me = requests.get(f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert me.status_code == 200
    # Gunicorn's own lines (boot, signals, worker exits) come out as JSON like ours.
    lines = [json.loads(line) for line in process.stderr.read().splitlines() if line.strip()]
    assert {"gunicorn.error", "app.access"} <= {line["logger"] for line in lines}


def test_gunicorn_refuses_an_unsafe_production_start_with_one_line(environment):
    result = subprocess.run(
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{free_port()}", "app:create_app()"],
        cwd=ROOT,
        env={**environment, "FLASK_ENV": "production", "SECRET_KEY": "your-secret-key-here"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["Configuration error: SECRET_KEY is a well-known placeholder"]


def test_python_run_py(environment):
    port = free_port()
    with serving([sys.executable, "run.py"], {**environment, "PORT": str(port), "DEBUG": "false"}, port) as (
        base,
        _process,
    ):
        exercise(base)


def test_flask_run(environment):
    port = free_port()
    with serving([str(BIN / "flask"), "run", "--port", str(port)], environment, port) as (base, _process):
        exercise(base)
