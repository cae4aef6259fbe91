"""Metrics under gunicorn with several workers: totals add up whichever worker answers, and never drop."""

import subprocess
import time

import psutil
import requests

from tests.helpers import outside_tool
from tests.monitoring.test_metrics import sample
from tests.nacos.helpers import wait_for
from tests.processes import free_port, gunicorn, service_environment, serving


def several_workers_environment(tmp_path, metrics_dir) -> dict[str, str]:
    """A production service of several workers (no Redis) sharing their metrics through metrics_dir."""
    return service_environment(
        tmp_path,
        FLASK_ENV="production",
        NACOS_ENABLED="false",
        RATE_LIMIT_ALLOW_MEMORY="true",  # several workers, no Redis
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )


def test_counts_add_up_across_workers_and_survive_a_killed_worker(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from a previous run")
    env = several_workers_environment(tmp_path, metrics_dir)
    port = free_port()
    with serving(gunicorn(port, workers=4), env, port) as (base, master):
        assert not (metrics_dir / "counter_999999.db").exists()  # cleaned at start

        def live_count() -> float:
            text = requests.get(f"{base}/monitoring/metrics", timeout=5).text  # a new connection: any worker
            return sample(text, "http_requests_total", route="/api/v1/health/live", status="200")

        # serving()'s readiness probes count too, and a slow start may take more than one of them.
        expected = live_count() + 40
        session = requests.Session()
        for _ in range(40):
            session.get(f"{base}/api/v1/health/live", timeout=5)
        assert {live_count() for _ in range(8)} == {expected}

        for number in range(20):  # method names gunicorn lets through, each new to the app
            session.request(f"MADEUP{chr(ord('A') + number)}", f"{base}/api/v1/health/live", timeout=5)
        text = requests.get(f"{base}/monitoring/metrics", timeout=5).text
        assert sample(text, "http_requests_total", method="other", route="unmatched", status="405") == 20
        assert "MADEUP" not in text

        workers = psutil.Process(master.pid).children()
        workers[0].kill()
        deadline = time.monotonic() + 20
        while len(psutil.Process(master.pid).children()) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {live_count() for _ in range(8)} == {expected}

        text = requests.get(f"{base}/monitoring/metrics", timeout=5).text
        assert sample(text, "server_process_resident_memory_bytes", role="master") > 0
        assert len([line for line in text.splitlines() if line.startswith("server_process_threads{")]) == 5
        assert sample(text, "http_requests_in_flight") == 1  # only the scrape itself
        checked = subprocess.run(
            [outside_tool("promtool"), "check", "metrics"], input=text.encode(), capture_output=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_recycled_workers_do_not_pile_up_files_and_totals_hold(tmp_path):
    metrics_dir = tmp_path / "metrics"
    env = several_workers_environment(tmp_path, metrics_dir)
    port = free_port()
    # A new worker every 5 requests, exactly (the configured jitter would spread that over ~100).
    command = [*gunicorn(port, workers=2), "--max-requests", "5", "--max-requests-jitter", "0"]
    with serving(command, env, port) as (base, _master):
        for _ in range(60):
            requests.get(f"{base}/api/v1/health/live", timeout=5)  # a new connection each: both workers serve

        def per_worker_files() -> list[str]:
            return [p.name for p in metrics_dir.glob("*.db") if "archive" not in p.name]

        # Counter, histogram and gauge files of the 2 live workers, and the master's (idle) gauge:
        # 12 workers came and went, and left no file behind once the last ones are reaped.
        wait_for(lambda: len(per_worker_files()) <= 2 * 3 + 1, timeout=15)
        text = requests.get(f"{base}/monitoring/metrics", timeout=5).text
        assert sample(text, "http_requests_total", route="/api/v1/health/live", status="200") == 61
        files = sorted(p.name for p in metrics_dir.glob("*.db"))
        assert {"counter_archive.db", "histogram_archive.db"} <= set(files)
