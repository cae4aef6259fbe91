"""Registration by real servers: gunicorn with several workers, signals, the development servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.nacos.helpers import dead_address, wait_for
from tests.processes import BIN, ROOT, HalfSentLogin, free_port, gunicorn, port_open, service_environment, serving

INTERVAL = 0.5


@pytest.fixture
def environment(tmp_path, nacos):
    return service_environment(
        tmp_path,
        FLASK_ENV="production",
        NACOS_SERVER_ADDR=nacos.address,
        NACOS_SERVICE_IP="127.0.0.1",
        NACOS_HEARTBEAT_INTERVAL=str(INTERVAL),
        NACOS_DEREGISTER_TIME="5",
        NACOS_DRAIN_SECONDS="2",
        RATE_LIMIT_ALLOW_MEMORY="true",  # several workers, no Redis
    )


def instance_count_over(nacos, seconds: float) -> set[int]:
    """Every count of our instances seen while sampling for this long."""
    counts = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts.add(len(nacos.hosts("flask-api")))
        time.sleep(0.02)
    return counts


def signals_blocked(pid: int, thread_id: int) -> set[int]:
    status = Path(f"/proc/{pid}/task/{thread_id}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


def test_four_workers_make_one_instance_and_a_killed_worker_changes_nothing(environment, nacos):
    port = free_port()
    with serving(gunicorn(port, workers=4), environment, port) as (base, master):
        wait_for(lambda: nacos.hosts("flask-api"))
        assert instance_count_over(nacos, 1.5) == {1}
        assert [(i.ip, i.port) for i in nacos.hosts("flask-api")] == [("127.0.0.1", port)]
        # The master's own threads (the registrar's) leave SIGTERM and SIGINT to its main thread, which
        # alone runs Python's handlers: a stop's deregistration starts at once, not up to a second later.
        helper_threads = [t.id for t in psutil.Process(master.pid).threads() if t.id != master.pid]
        assert helper_threads
        assert all(signals_blocked(master.pid, t) >= {signal.SIGTERM, signal.SIGINT} for t in helper_threads)

        workers = psutil.Process(master.pid).children()
        assert len(workers) == 4
        workers[0].kill()  # SIGKILL: no chance to clean up
        wait_for(
            lambda: (
                len(psutil.Process(master.pid).children()) == 4
                and workers[0].pid not in {w.pid for w in psutil.Process(master.pid).children()}
            )
        )
        beats_before = len(nacos.requests_to("PUT", "/beat"))

        assert instance_count_over(nacos, 2 * INTERVAL + 0.5) == {1}
        assert len(nacos.requests_to("PUT", "/beat")) > beats_before
        assert nacos.requests_to("DELETE", "/instance") == []
        assert len(nacos.requests_to("POST", "/nacos/v1/ns/instance")) == 1
        # What a worker reads of the registrar (/monitoring/nacos/service needs an admin in production).
        assert requests.get(f"{base}/monitoring/metrics?format=json", timeout=5).json()["nacos"]["registered"] is True


def test_sigterm_deregisters_first_then_drains_then_stops(environment, nacos):
    port = free_port()
    process = subprocess.Popen(gunicorn(port, workers=2), cwd=ROOT, env=environment, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: port_open(port) and nacos.hosts("flask-api"), timeout=30)
        # A request in flight: headers sent, body still on its way.
        in_flight = HalfSentLogin(port)
        time.sleep(0.2)

        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: not nacos.hosts("flask-api"), timeout=1)
        deregistered = nacos.requests_to("DELETE", "/instance")[0].at
        assert deregistered - signalled < 1

        # Still serving new requests while consumers drop the instance from their lists, but no
        # longer ready: a Kubernetes Service or a load balancer stops routing here too.
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health/live", timeout=2).status_code == 200
        for _ in range(4):  # answered by any worker
            readiness = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
            assert readiness.status_code == 503 and readiness.headers["Retry-After"] == "5"
            assert readiness.json()["error"]["details"] == [{"field": "instance", "message": "draining"}]
        assert time.monotonic() - signalled < 2  # all of it during the drain

        # The drain is over and gunicorn is stopping; the request in flight still gets its answer.
        time.sleep(max(0.0, signalled + 2.5 - time.monotonic()))
        answer = in_flight.finish()
        assert answer.startswith("HTTP/1.1 401"), answer

        wait_for(lambda: not port_open(port), timeout=10)
        port_closed = time.monotonic()
        assert deregistered < signalled + 1 < signalled + 2 <= port_closed  # out of Nacos, drained, then closed
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_sigint_is_as_graceful(environment, nacos):
    port = free_port()
    with serving(gunicorn(port, workers=1), {**environment, "NACOS_DRAIN_SECONDS": "0.5"}, port) as (_base, master):
        wait_for(lambda: nacos.hosts("flask-api"))
        master.send_signal(signal.SIGINT)
        wait_for(lambda: not nacos.hosts("flask-api"), timeout=1)
        assert master.wait(timeout=30) == 0


def test_fail_fast_stops_gunicorn_with_one_line(environment):
    result = subprocess.run(
        gunicorn(free_port(), workers=1),
        cwd=ROOT,
        env={**environment, "NACOS_SERVER_ADDR": dead_address(), "NACOS_FAIL_FAST": "true", "NACOS_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Nacos registration failed and NACOS_FAIL_FAST is set")


def test_unreachable_nacos_does_not_stop_serving(environment):
    port = free_port()
    env = {**environment, "NACOS_SERVER_ADDR": dead_address(), "NACOS_DRAIN_SECONDS": "0"}
    with serving(gunicorn(port, workers=1), env, port) as (base, _master):
        status = requests.get(f"{base}/monitoring/metrics?format=json", timeout=5).json()["nacos"]
        assert status["registered"] is False and status["registrar_running"] is True
        assert requests.get(f"{base}/api/v1/health", timeout=5).status_code == 200


def test_dev_server_with_the_reloader_registers_once(environment, nacos):
    port = free_port()
    env = {**environment, "FLASK_ENV": "development", "DEBUG": "true", "PORT": str(port)}
    with serving([sys.executable, "run.py"], env, port) as (_base, process):
        wait_for(lambda: nacos.hosts("flask-api"))
        time.sleep(4 * INTERVAL)
        assert len(nacos.requests_to("POST", "/nacos/v1/ns/instance")) == 1
        assert len(nacos.requests_to("PUT", "/beat")) <= 5  # one beater, not two
        assert len(psutil.Process(process.pid).children()) == 1  # the reloader's serving child
    wait_for(lambda: not nacos.hosts("flask-api"), timeout=5)  # SIGTERM deregistered it


def test_flask_run_registers_and_leaves(environment, nacos):
    port = free_port()
    with serving([str(BIN / "flask"), "run", "--port", str(port)], environment, port):
        wait_for(lambda: nacos.hosts("flask-api"))
        assert [i.port for i in nacos.hosts("flask-api")] == [port]
    wait_for(lambda: not nacos.hosts("flask-api"), timeout=5)
    assert os.environ.get("APP_NACOS_RUNTIME_DIR") is None  # nothing leaked into the test process


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "run.py"], [str(BIN / "flask"), "run", "--reload"]],
    ids=["run.py", "flask run"],
)
def test_sigterm_to_the_reloader_passes_the_stop_on_to_the_serving_child(environment, nacos, command):
    port = free_port()
    env = {**environment, "FLASK_ENV": "development", "DEBUG": "true", "PORT": str(port), "FLASK_RUN_PORT": str(port)}
    with serving(command, env, port) as (_base, watcher):
        wait_for(lambda: nacos.hosts("flask-api"))
        [child] = psutil.Process(watcher.pid).children()

        watcher.send_signal(signal.SIGTERM)  # `kill <pid>`: the watcher alone, not its process group

        assert watcher.wait(timeout=10) == 0
        child.wait(timeout=10)
        assert nacos.requests_to("DELETE", "/instance") and not nacos.hosts("flask-api")
