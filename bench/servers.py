"""The apps under gunicorn: the service with its own gunicorn.conf.py (and its variants: tracing on,
a baseline checkout), the bare and reference apps with the service's resolved gunicorn settings;
what they cost in CPU and memory, read from /proc; and the tracing collector."""

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

from tests.processes import BIN, ROOT, eventually, free_port, port_open, start_process, stop_process, wait_until_serving

# The gunicorn settings the floor apps (bare, reference) copy from the service's resolved configuration.
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

# The tracing collector the tests use; absent before tracing is (then the tracing rows say so).
COLLECTOR = ROOT / "tests" / "tracing" / "otlp_receiver.py"


def own_cpu_seconds(times) -> float:
    return times.user + times.system


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

    def cpu_seconds(self) -> float:
        """The CPU time (user and system) the server's processes have used since it started.

        The master's own, each live worker's, and, through the master's children fields, that of every
        worker it has reaped (gunicorn replaces workers after max_requests): the difference of two
        readings is what the server spent in between, whatever workers came and went. Read again
        when the master reaped a worker while its children were being read, which would count that
        worker twice or not at all.
        """
        master = psutil.Process(self.process.pid)
        while True:
            before = master.cpu_times()
            try:
                workers = sum(own_cpu_seconds(worker.cpu_times()) for worker in master.children())
            except psutil.NoSuchProcess:  # reaped meanwhile
                continue
            after = master.cpu_times()
            reaped = after.children_user + after.children_system
            if reaped == before.children_user + before.children_system:
                return own_cpu_seconds(after) + reaped + workers

    def worker_pss(self) -> dict[int, int]:
        """Each worker's (the master's children's) proportional set size in bytes, by pid: its
        private memory and its share of what it shares with the master and the other workers."""
        pss = {}
        for worker in psutil.Process(self.process.pid).children():
            rollup = Path(f"/proc/{worker.pid}/smaps_rollup").read_text()
            pss[worker.pid] = int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)[1]) * 1024
        return pss

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
    floor_env: dict[str, str],
    gunicorn: dict[str, str],
    workdir: Path,
    baseline: Path | None = None,
    tracing: dict[str, str] | None = None,
) -> dict[str, Server]:
    """ours and the floor apps; the baseline checkout if given; and for each entry of `tracing`
    (server name: where it exports), the service with tracing on."""

    def service(name: str, root: Path, **env: str) -> Server:
        return Server(
            name,
            [str(BIN / "gunicorn"), "-c", str(root / "gunicorn.conf.py"), "app:create_app()"],
            {**service_env, "PYTHONPATH": str(root), **env},
            live_path="/api/v1/health/live",
            workdir=workdir,
        )

    def floor(name: str, module: str, live_path: str) -> Server:
        flags = [part for setting, flag in GUNICORN_SETTINGS.items() for part in (flag, gunicorn[setting])]
        command = [str(BIN / "gunicorn"), *flags, f"{module}:app"]
        return Server(name, command, floor_env, live_path=live_path, workdir=workdir)

    servers = {
        "ours": service("ours", ROOT),
        "bare": floor("bare", "bare_app", "/json"),
        "reference": floor("reference", "reference_app", "/api/v1/health/live"),
    }
    for name, endpoint in (tracing or {}).items():
        servers[name] = service(name, ROOT, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    if baseline:
        servers["baseline"] = service("baseline", baseline)
    return servers


@contextmanager
def collector(env: dict[str, str], workdir: Path) -> Iterator[int]:
    """The collector running, with its log in the workdir: its port."""
    port = free_port()
    module = ".".join(COLLECTOR.relative_to(ROOT).with_suffix("").parts)
    with open(workdir / f"collector-{port}.log", "ab") as log:
        process = start_process([sys.executable, "-m", module, str(port)], env=env, stdout=log, stderr=log)
    try:
        if not eventually(lambda: port_open(port) or process.poll() is not None, timeout=30) or not port_open(port):
            raise RuntimeError(f"the tracing collector did not listen on {port}: see {log.name}")
        yield port
    finally:
        stop_process(process)
