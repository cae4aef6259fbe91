"""The seed's ways of serving, as real processes on loopback: gunicorn, `python run.py`, `flask run`."""

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tests.processes import (
    BIN,
    ROOT,
    HalfSentLogin,
    eventually,
    free_port,
    gunicorn,
    port_open,
    service_environment,
    serving,
)


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    # Nacos has its own process tests (tests/nacos/test_processes.py). No Redis here: the
    # production starts with several workers say that per-worker rate-limit counts are accepted.
    return service_environment(tmp_path, NACOS_ENABLED="false", RATE_LIMIT_ALLOW_MEMORY="true")


# The seed's example password: accepted in development, refused in production as too common.
SEED_PASSWORD = "password123"
PRODUCTION_PASSWORD = "violet anchor 42 drums"


def exercise(base: str, password: str = SEED_PASSWORD) -> None:
    """The seed's curl examples, over real HTTP."""
    user = {"username": "testuser", "email": "test@example.com", "password": password}
    assert requests.post(f"{base}/auth/register", json=user, timeout=10).status_code == 201
    login = requests.post(f"{base}/auth/login", json={"username": "testuser", "password": password}, timeout=10)
    assert login.status_code == 200
    token = login.json()["access_token"]
    users = requests.get(f"{base}/api/v1/users", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert users.status_code == 200 and users.json()["total"] == 1
    assert requests.get(f"{base}/api/v1/health", timeout=10).json()["status"] == "ok"


def test_gunicorn_production_line_with_four_workers(environment):
    port = free_port()
    with serving(gunicorn(port), {**environment, "FLASK_ENV": "production"}, port) as (base, process):
        exercise(base, PRODUCTION_PASSWORD)
        # Every worker shares the secrets and the database: tokens work whichever worker answers.
        token = requests.post(
            f"{base}/auth/login", json={"username": "testuser", "password": PRODUCTION_PASSWORD}, timeout=10
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
    assert result.stderr.strip().splitlines() == [
        "Configuration error: SECRET_KEY is a well-known placeholder "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
    ]


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


def test_gunicorn_takes_bind_and_workers_from_the_settings(environment):
    port = free_port()
    env = {**environment, "FLASK_ENV": "production", "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "3"}
    with serving([str(BIN / "gunicorn"), "app:create_app()"], env, port) as (base, master):
        deadline = time.monotonic() + 20  # the first worker may answer before the last has started
        while len(psutil.Process(master.pid).children()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert len(psutil.Process(master.pid).children()) == 3
        assert requests.get(f"{base}/api/v1/health/live", timeout=5).status_code == 200


def test_a_stopping_gunicorn_refuses_new_connections_while_it_finishes_the_ones_it_has(environment):
    port = free_port()
    with serving(gunicorn(port, workers=2), {**environment, "FLASK_ENV": "production"}, port) as (_base, master):
        # A request in flight: headers sent, body still on its way, so the workers cannot be done yet.
        in_flight = HalfSentLogin(port)
        # Connections are taken in the order they arrive: this one answered, the one above is taken in too.
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health/live", timeout=5).status_code == 200

        master.send_signal(signal.SIGTERM)

        # A new connection is refused, where it could otherwise be taken into the listen queue and
        # reset unanswered once the request in flight is done.
        assert eventually(lambda: not port_open(port), timeout=10)
        assert in_flight.finish().startswith("HTTP/1.1 401")
        assert master.wait(timeout=30) == 0
