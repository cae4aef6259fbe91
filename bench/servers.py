"""The two apps under gunicorn: the service with its own gunicorn.conf.py, and the bare app with the
service's resolved gunicorn settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.processes import BIN, ROOT, free_port, start_process, stop_process, wait_until_serving

# The gunicorn settings the bare app copies from the service's resolved configuration.
GUNICORN_SETTINGS = {
    "workers": "--workers",
    "worker_class": "--worker-class",
    "threads": "--threads",
    "timeout": "--timeout",
    "graceful_timeout": "--graceful-timeout",
    "keepalive": "--keep-alive",
    "max_requests": "--max-requests",
    "max_requests_jitter": "--max-requests-jitter",
}


class Server:
    """One gunicorn, started in its own process group, with its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], *, live_path: str, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.command = [*command, "--bind", f"127.0.0.1:{self.port}"]
        self.env = env
        self.live_path = live_path
        self.workdir = workdir
        self.log = workdir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> float:
        """Start it; the seconds from the process's start to its first 200 on the liveness path."""
        with open(self.log, "ab") as log:
            started = time.perf_counter()
            self.process = start_process(self.command, env=self.env, cwd=self.workdir, stdout=log, stderr=log)
        try:  # polled often: scenario 6 measures this
            wait_until_serving(self.process, self.url + self.live_path, timeout=timeout, interval=0.01)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{self.name}: {error}\n{self.log_tail()}") from None
        return time.perf_counter() - started

    def stop(self) -> None:
        stop_process(self.process)

    @contextmanager
    def running(self) -> Iterator[Server]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def worker_rss(self) -> dict[int, int]:
        """VmRSS in bytes of each worker (the master's children), by pid."""
        rss = {}
        for worker in psutil.Process(self.process.pid).children():
            status = Path(f"/proc/{worker.pid}/status").read_text()
            rss[worker.pid] = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)[1]) * 1024
        return rss

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# Run by gunicorn's own Python: loads the configuration as `gunicorn` does and prints it as JSON.
_PRINT_GUNICORN_CONFIG = """
import json
from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.workers.gthread import ThreadWorker
config = WSGIApplication().cfg
settings = {name: str(getattr(config, name)) for name in %r}
# The service may use a subclass of a stock worker (one that differs only when stopping).
settings["worker_class"] = "gthread" if issubclass(config.worker_class, ThreadWorker) else config.worker_class_str
settings["service_worker_class"] = config.worker_class.__name__
print(json.dumps(settings))
"""


def resolved_gunicorn_settings(env: dict[str, str], workdir: Path) -> dict[str, str]:
    """The service's gunicorn settings as gunicorn itself resolves them from gunicorn.conf.py."""
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            _PRINT_GUNICORN_CONFIG % (list(GUNICORN_SETTINGS),),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "app:create_app()",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(printed.strip().splitlines()[-1])


def make_servers(
    *,
    service_env: dict[str, str],
    bare_env: dict[str, str],
    gunicorn: dict[str, str],
    workdir: Path,
    baseline: Path | None = None,
) -> dict[str, Server]:
    def service(name: str, root: Path) -> Server:
        return Server(
            name,
            [str(BIN / "gunicorn"), "-c", str(root / "gunicorn.conf.py"), "app:create_app()"],
            {**service_env, "PYTHONPATH": str(root)},
            live_path="/api/v1/health/live",
            workdir=workdir,
        )

    flags = [part for name, flag in GUNICORN_SETTINGS.items() for part in (flag, gunicorn[name])]
    servers = {
        "ours": service("ours", ROOT),
        "bare": Server(
            "bare", [str(BIN / "gunicorn"), *flags, "bare_app:app"], bare_env, live_path="/json", workdir=workdir
        ),
    }
    if baseline:
        servers["baseline"] = service("baseline", baseline)
    return servers
