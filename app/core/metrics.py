"""Prometheus metrics: request counters and latencies recorded per request, and system, process,
app figures read at scrape time, with the sections other packages add (Nacos: app/nacos/state.py).

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py before this module is imported)
makes every worker write its counters to files there, and a scrape adds up all of them, so the
totals do not depend on which worker answers and do not drop when one dies.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import Exemplar, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from app.core.compat.prometheus_client import add_file_into

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
SERVER_PID_VARIABLE = "APP_SERVER_PID"  # gunicorn's master, so that workers can list their siblings

if _directory := os.environ.get(MULTIPROCESS_DIR_VARIABLE):
    # prometheus_client writes there from the first metric defined below; manage.py and the
    # development servers may run with the variable set before gunicorn ever created the folder.
    os.makedirs(_directory, exist_ok=True)

# Recorded per request; in multiprocess mode each process writes them to its own files.
REQUESTS = CollectorRegistry(auto_describe=True)
REQUEST_COUNT = Counter("http_requests", "Requests answered", ["method", "route", "status"], registry=REQUESTS)
LATENCY = "http_request_duration_seconds"
LATENCY_BUCKETS = Histogram.DEFAULT_BUCKETS
REQUEST_LATENCY = Histogram(
    LATENCY,
    "Time to answer a request",
    ["method", "route", "status"],
    registry=REQUESTS,
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being answered now", registry=REQUESTS, multiprocess_mode="livesum"
)
# Every label value must come from a small set the app knows: a client may send any method name, and
# each new label value is a series kept (and, under gunicorn, a file entry) for the process' life.
# The route is the matched rule's template or "unmatched", and the status is one the app answered.
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
OTHER_METHOD = "other"


@dataclass(frozen=True)
class ScrapedSection:
    """Figures a higher package adds to every scrape, read at scrape time: `figures()` is the
    section's part of the JSON view, and `metrics(figures)` the same figures as Prometheus metrics."""

    figures: Callable[[], dict[str, Any]]
    metrics: Callable[[dict[str, Any]], Iterable[Metric]]


_sections: dict[str, ScrapedSection] = {}


def add_scraped_section(name: str, section: ScrapedSection) -> None:
    """Every scrape from now on has this section (under `name` in the JSON view); adding it again replaces it."""
    _sections[name] = section


ExemplarSource = Callable[[], "dict[str, str] | None"]
_exemplar_source: ExemplarSource | None = None


def set_exemplar_source(source: ExemplarSource) -> None:
    """Each request's latency carries `source()` (tracing: {"trace_id": ...}) as its bucket's exemplar,
    shown to scrapers that ask for OpenMetrics. Without a source (tracing off) nothing is looked up."""
    global _exemplar_source
    _exemplar_source = source


def init_metrics(app: Flask) -> None:
    @app.before_request
    def _count_in() -> None:
        IN_FLIGHT.inc()
        g.counted_in_flight = True

    @app.after_request
    def _record(response: Response) -> Response:
        # The route template, never the raw path: /api/v1/users/<int:user_id>, not one series per id.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in STANDARD_METHODS else OTHER_METHOD
        labels = (method, route, str(response.status_code))
        REQUEST_COUNT.labels(*labels).inc()
        latency = time.perf_counter() - g.request_started
        exemplar = _exemplar_source() if _exemplar_source is not None else None
        REQUEST_LATENCY.labels(*labels).observe(latency, exemplar)
        if exemplar is not None and _worker_exemplars is not None:
            _worker_exemplars.record(labels, latency, exemplar)
        return response

    @app.teardown_request
    def _count_out(_exc: BaseException | None) -> None:
        if g.pop("counted_in_flight", False):
            IN_FLIGHT.dec()


def prometheus_text(*, version: str, data_dir: str, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition and its content type: OpenMetrics (with exemplars) when `accept` (the scraper's
    Accept header) asks for it, Prometheus text otherwise."""
    encode, content_type = choose_encoder(accept or "")
    registry = CollectorRegistry()
    registry.register(_Scraped(version=version, data_dir=data_dir))
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        registry.register(_Each(REQUESTS))
        return encode(registry), content_type
    if _worker_exemplars is not None:
        _worker_exemplars.write()  # this worker's latest, which the others read from its file
    registry.register(_WithExemplars(multiprocess.MultiProcessCollector(None, directory), Path(directory)))
    with _folding_lock(Path(directory), exclusive=False):  # never read halfway through a fold
        return encode(registry), content_type


class _WorkerExemplars:
    """Exemplars under gunicorn, where prometheus_client's multiprocess mode keeps none: each worker
    keeps the latest exemplar of each bucket it observed and writes them, about once a second, to its
    own small file beside the metrics files; a scrape puts the newest of every bucket into the output."""

    WRITE_EVERY_SECONDS = 1.0

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.latest: dict[str, list] = {}  # "method route status le" -> [exemplar, latency, time]
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.pid = 0  # of the process whose writer thread runs

    def record(self, labels: tuple[str, str, str], latency: float, exemplar: dict[str, str]) -> None:
        bound = next((b for b in LATENCY_BUCKETS if latency <= b), float("inf"))
        key = " ".join((*labels, floatToGoString(bound)))
        with self.lock:
            self.latest[key] = [exemplar, latency, time.time()]
            self.changed.set()
            if self.pid != os.getpid():  # first use in this process (a worker forks after import)
                self.pid = os.getpid()
                threading.Thread(target=self._write_when_changed, name="metrics-exemplars", daemon=True).start()

    def _write_when_changed(self) -> None:
        while True:
            self.changed.wait()
            time.sleep(self.WRITE_EVERY_SECONDS)  # one write for all the requests of a busy second
            self.write()

    def write(self) -> None:
        with self.lock:  # also keeps the scrape's write and the writer thread's apart
            if not self.changed.is_set():
                return
            self.changed.clear()
            _write_atomically(self.directory / f"exemplars_{os.getpid()}.json", json.dumps(self.latest))


def save_exemplars() -> None:
    """A worker about to exit writes its latest exemplars (gunicorn's worker_exit)."""
    if _worker_exemplars is not None:
        _worker_exemplars.write()


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.replace(path)  # a scrape never reads half a file


def read_exemplars(directory: Path, *, pid: int | None = None) -> dict[str, list]:
    """The newest exemplar of each bucket, over the files of every worker and the archive of the
    workers gone; with `pid`, over that worker's file and the archive only."""
    newest: dict[str, list] = {}
    for path in directory.glob("exemplars_*.json"):
        if pid is not None and path.name not in (f"exemplars_{pid}.json", "exemplars_archive.json"):
            continue
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):  # removed meanwhile
            continue
        for key, entry in found.items():
            if key not in newest or entry[2] > newest[key][2]:
                newest[key] = entry
    return newest


class _WithExemplars(Collector):
    """The workers' metrics, with the exemplars they wrote put on the latency buckets."""

    def __init__(self, collector: Collector, directory: Path) -> None:
        self.collector = collector
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        exemplars = read_exemplars(self.directory)
        for metric in self.collector.collect():
            if exemplars and metric.name == LATENCY:
                metric.samples = [self._with_exemplar(sample, exemplars) for sample in metric.samples]
            yield metric

    @staticmethod
    def _with_exemplar(sample, exemplars: dict[str, list]):
        if not sample.name.endswith("_bucket"):
            return sample
        labels = sample.labels
        found = exemplars.get(" ".join((labels["method"], labels["route"], labels["status"], labels["le"])))
        return sample if found is None else sample._replace(exemplar=Exemplar(*found))


_worker_exemplars = _WorkerExemplars(Path(_directory)) if _directory else None


def fold_dead_worker(pid: int, *, directory: Path) -> None:
    """Gunicorn's master, when a worker has exited: add its counters and histograms to one archive
    file per type and delete its files, so that recycled workers do not pile up files while the
    totals stay exactly as they were. Its live gauges are dropped; its exemplars join the archive's."""
    multiprocess.mark_process_dead(pid, str(directory))
    if (exemplars := directory / f"exemplars_{pid}.json").exists():
        _write_atomically(directory / "exemplars_archive.json", json.dumps(read_exemplars(directory, pid=pid)))
        exemplars.unlink()
    with _folding_lock(directory, exclusive=True):
        for kind in ("counter", "histogram"):
            dead = directory / f"{kind}_{pid}.db"
            if not dead.exists():
                continue
            add_file_into(dead, archive=directory / f"{kind}_archive.db")
            dead.unlink()


@contextmanager
def _folding_lock(directory: Path, *, exclusive: bool) -> Iterator[None]:
    import fcntl  # POSIX, like gunicorn, the only user: importing the app elsewhere must still work

    with open(directory / "fold.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def snapshot(*, version: str, data_dir: str) -> dict[str, Any]:
    """The figures a person asks for: CPU, memory, disk, the server's processes, and the added sections."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(data_dir)
    return {
        "app": {"version": version},
        "system": {
            "cpu_percent": psutil.cpu_percent(interval=None),  # since the previous reading
            "cpu_count": psutil.cpu_count(),
            "load_average": list(psutil.getloadavg()),
            "memory": {"total_bytes": memory.total, "available_bytes": memory.available, "percent": memory.percent},
            "disk": {"path": data_dir, "total_bytes": disk.total, "free_bytes": disk.free, "percent": disk.percent},
        },
        "processes": [_process_figures(process, role) for process, role in _server_processes()],
        **{name: section.figures() for name, section in _sections.items()},
    }


def _server_processes() -> Iterator[tuple[psutil.Process, str]]:
    """Gunicorn's master and workers, or just this process under a development server."""
    master_pid = os.environ.get(SERVER_PID_VARIABLE)
    if not master_pid:
        yield psutil.Process(), "server"
        return
    try:
        master = psutil.Process(int(master_pid))
        yield master, "master"
        for worker in master.children():
            yield worker, "worker"
    except psutil.NoSuchProcess:
        yield psutil.Process(), "worker"


def _process_figures(process: psutil.Process, role: str) -> dict[str, Any]:
    try:
        with process.oneshot():
            cpu = process.cpu_times()
            return {
                "pid": process.pid,
                "role": role,
                "rss_bytes": process.memory_info().rss,
                "cpu_seconds": round(cpu.user + cpu.system, 3),
                "threads": process.num_threads(),
                "open_fds": process.num_fds() if hasattr(process, "num_fds") else process.num_handles(),
            }
    except psutil.Error:  # it exited between listing and reading
        return {"pid": process.pid, "role": role, "gone": True}


class _Each(Collector):
    """Hands over another registry's metrics (single-process mode)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


class _Scraped(Collector):
    """Figures read when Prometheus asks: nothing to keep between scrapes, nothing per worker."""

    def __init__(self, *, version: str, data_dir: str) -> None:
        self.version = version
        self.data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        figures = snapshot(version=self.version, data_dir=self.data_dir)
        yield InfoMetricFamily("app", "The running application", value={"version": self.version})

        system = figures["system"]
        yield _gauge("system_cpu_usage_percent", "CPU use since the previous scrape", system["cpu_percent"])
        for minutes, load in zip((1, 5, 15), system["load_average"], strict=True):
            yield _gauge(f"system_load{minutes}", f"Load average over {minutes} minute(s)", load)
        yield _gauge("system_memory_total_bytes", "Physical memory", system["memory"]["total_bytes"])
        yield _gauge("system_memory_available_bytes", "Memory available", system["memory"]["available_bytes"])
        disk = GaugeMetricFamily("system_disk_free_bytes", "Free space where the data lives", labels=["path"])
        disk.add_metric([system["disk"]["path"]], system["disk"]["free_bytes"])
        yield disk
        total = GaugeMetricFamily("system_disk_total_bytes", "Size of the disk where the data lives", labels=["path"])
        total.add_metric([system["disk"]["path"]], system["disk"]["total_bytes"])
        yield total

        per_process = {
            "rss_bytes": ("server_process_resident_memory_bytes", "Resident memory of a server process"),
            "cpu_seconds": ("server_process_cpu_seconds", "CPU time used by a server process"),
            "threads": ("server_process_threads", "Threads of a server process"),
            "open_fds": ("server_process_open_fds", "Open file descriptors of a server process"),
        }
        for field, (name, description) in per_process.items():
            family = GaugeMetricFamily(name, description, labels=["pid", "role"])
            for process in figures["processes"]:
                if field in process:
                    family.add_metric([str(process["pid"]), process["role"]], process[field])
            yield family

        for name, section in _sections.items():
            yield from section.metrics(figures[name])


def _gauge(name: str, description: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, description, value=value)
