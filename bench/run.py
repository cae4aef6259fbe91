"""The benchmark: what the service costs per request over a bare Flask app on the same machine.

Both apps run under gunicorn on loopback with the service's production settings, on one PostgreSQL
database seeded with N users. wrk drives them in turn, round after round, first one app then the
other and the other way round in the next round; every ratio compares figures of the same round and
the table shows medians over rounds, so that a noisy machine moves both sides alike.

Run it with bench/run.sh (which installs wrk and the venv); `bench/run.sh --help` lists the options.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import argon2
import psutil
import requests
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.config import ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_TIME_COST, Settings  # noqa: E402
from app.extensions import current_passwords, current_settings, db  # noqa: E402
from app.models import Role, User  # noqa: E402
from tests.processes import hermetic_environment  # noqa: E402

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RESULTS = BENCH / "RESULTS.md"
RESULTS_BEGIN, RESULTS_END = "<!-- results:begin -->", "<!-- results:end -->"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/flask_api_bench"
PASSWORD = "bench-password-Zq7!x"  # noqa: S105 (every seeded user's; a throwaway database)
PER_PAGE = 20
LOGIN_CONNECTIONS = 4
LOGIN_MIN_SECONDS = 5  # a login takes a good part of a second: shorter runs count next to none
VERIFY = "argon2 verify"  # the raw hash verification a login is compared with
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


@dataclass(frozen=True)
class Plan:
    users: int
    rounds: int
    seconds: int  # per wrk measurement
    connections: int
    warmup_seconds: int
    rss_warmup: int  # requests before the first RSS reading
    rss_requests: int  # requests between the two readings
    starts: int


FULL = Plan(
    users=100_000,
    rounds=5,
    seconds=10,
    connections=10,
    warmup_seconds=3,
    rss_warmup=5_000,
    rss_requests=50_000,
    starts=5,
)
SMOKE = Plan(
    users=200, rounds=1, seconds=1, connections=4, warmup_seconds=0, rss_warmup=200, rss_requests=1_000, starts=1
)


@dataclass(frozen=True)
class Load:
    """One wrk run."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass(frozen=True)
class Probe:
    """A request mix on one app; `{id}` in a path is a random user id."""

    name: str
    app: str  # "ours", "bare" or "baseline"
    paths: tuple[str, ...]
    authenticated: bool = False
    body: str | None = None
    connections: int | None = None  # None: the plan's
    label: str = ""  # in the table, when not the name

    @property
    def title(self) -> str:
        return self.label or self.name


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
            self.process = subprocess.Popen(
                self.command, cwd=self.workdir, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._answers_200():
                return time.perf_counter() - started
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.name} gave no 200 on {self.live_path} within {timeout} s:\n{self.log_tail()}")

    def _answers_200(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", self.live_path)
            return connection.getresponse().status == 200
        except OSError:  # refused, or reset by a server still starting
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

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


# --- load ------------------------------------------------------------------------------------------


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    paths: tuple[str, ...] = (),
    ids: int = 1,
    token: str | None = None,
    body: str | None = None,
) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=30s", "-s", str(BENCH / "wrk.lua")]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if len(paths) == 1 and "{id}" not in paths[0]:  # one fixed request: wrk prepares it once
        url += paths[0]
        paths = ()
    command += [url, "--", f"ids={ids}"]
    if paths:
        command.append("paths=" + "|".join(paths))
    if body:
        command.append(f"body={body}")
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=True)
    line = next((line for line in finished.stdout.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{finished.stdout}\n{finished.stderr}")
    figures = json.loads(line.removeprefix("BENCH "))
    return Load(
        requests=figures["requests"],
        rps=figures["requests"] / figures["seconds"],
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=figures["errors"],
    )


class Bench:
    """The running apps and what it takes to drive them."""

    def __init__(self, *, plan: Plan, servers: dict[str, Server], settings: Settings, login_body: str) -> None:
        self.plan = plan
        self.servers = servers
        self.settings = settings
        self.login_body = login_body

    def token(self, server: Server) -> str:
        """A fresh access token (they live 15 minutes at most, shorter than a full run)."""
        response = requests.post(
            f"{server.url}/auth/login", data=self.login_body, headers={"Content-Type": "application/json"}, timeout=30
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def measure(self, probe: Probe, *, seconds: int | None = None, server: Server | None = None) -> Load:
        server = server or self.servers[probe.app]
        return wrk(
            server.url,
            seconds=seconds or self.plan.seconds,
            connections=probe.connections or self.plan.connections,
            paths=probe.paths,
            ids=self.plan.users,
            token=self.token(server) if probe.authenticated else None,
            body=probe.body,
        )

    def drive(self, probe: Probe, *, requests_wanted: int, server: Server) -> int:
        """At least this many requests, in wrk runs sized from the rate seen so far."""
        done, elapsed, errors = 0, 0.0, 0
        while done < requests_wanted:
            rate = done / elapsed if done else None
            seconds = 2 if rate is None else max(1, math.ceil((requests_wanted - done) / rate))
            load = self.measure(probe, seconds=seconds, server=server)
            done, elapsed, errors = done + load.requests, elapsed + seconds, errors + load.errors
        if errors:
            raise RuntimeError(f"{errors} errors while driving {probe.name}")
        return done


# --- scenarios -------------------------------------------------------------------------------------


BASELINE_PROBES = ("liveness", "get-by-id", "list page 1")  # measured on --baseline too


def probes(users: int, *, baseline: bool) -> dict[str, Probe]:
    last_page = math.ceil(users / PER_PAGE)
    login = json.dumps({"username": username(1), "password": PASSWORD})
    catalogue = {
        probe.name: probe
        for probe in (
            Probe("liveness", "ours", ("/api/v1/health/live",)),
            Probe("bare JSON", "bare", ("/json",)),
            Probe("get-by-id", "ours", ("/api/v1/users/{id}",), authenticated=True),
            Probe("bare PK SELECT", "bare", ("/users/{id}",)),
            Probe("list page 1", "ours", (f"/api/v1/users?page=1&per_page={PER_PAGE}",), authenticated=True),
            Probe(
                "list last page",
                "ours",
                (f"/api/v1/users?page={last_page}&per_page={PER_PAGE}",),
                authenticated=True,
                label=f"list page {last_page:,} (the last)",
            ),
            Probe("login", "ours", ("/auth/login",), body=login, connections=1, label="login, 1 connection"),
            Probe(
                "login, busy",
                "ours",
                ("/auth/login",),
                body=login,
                connections=LOGIN_CONNECTIONS,
                label=f"login, {LOGIN_CONNECTIONS} connections",
            ),
        )
    }
    if baseline:
        for name in BASELINE_PROBES:
            catalogue[f"{name}, baseline"] = replace(catalogue[name], name=f"{name}, baseline", app="baseline")
    return catalogue


def alternate(names: list[str], round_number: int) -> list[str]:
    """Every other round runs the other way round, so that drift during a round favours no side."""
    return names if round_number % 2 == 0 else names[::-1]


def request_rounds(bench: Bench, catalogue: dict[str, Probe]) -> list[dict[str, Load]]:
    """Scenarios 1 to 3, every probe once per round."""
    names = [name for name, probe in catalogue.items() if probe.body is None]
    if bench.plan.warmup_seconds:  # the first requests of a worker pay for lazy imports and connections
        for name in names:
            bench.measure(catalogue[name], seconds=bench.plan.warmup_seconds)
    rounds = []
    for number in range(bench.plan.rounds):
        rounds.append({name: bench.measure(catalogue[name]) for name in alternate(names, number)})
        report_progress(f"round {number + 1}/{bench.plan.rounds}", rounds[-1])
    return rounds


def hash_verify_seconds(settings: Settings, password_hash: str, *, times: int) -> list[float]:
    """argon2-cffi's own verify at the service's cost, in this process: the floor of a login."""
    hasher = argon2.PasswordHasher(
        time_cost=settings.auth.ARGON2_TIME_COST,
        memory_cost=settings.auth.ARGON2_MEMORY_COST,
        parallelism=settings.auth.ARGON2_PARALLELISM,
        type=argon2.Type.ID,
    )
    timings = []
    for _ in range(times):
        started = time.perf_counter()
        hasher.verify(password_hash, PASSWORD)
        timings.append(time.perf_counter() - started)
    return timings


def login_rounds(bench: Bench, catalogue: dict[str, Probe], password_hash: str) -> list[dict[str, Load]]:
    """Scenario 4: the login route at one connection, next to the raw verify, and at several."""
    names = [name for name, probe in catalogue.items() if probe.body is not None]
    rounds = []
    for number in range(bench.plan.rounds):
        figures = {}
        for name in alternate([VERIFY, *names], number):
            if name == VERIFY:
                timings = hash_verify_seconds(bench.settings, password_hash, times=max(3, bench.plan.seconds))
                figures[name] = Load(
                    requests=len(timings),
                    rps=1 / statistics.median(timings),
                    p50_ms=statistics.median(timings) * 1000,
                    p99_ms=max(timings) * 1000,
                    errors=0,
                )
            else:
                figures[name] = bench.measure(catalogue[name], seconds=max(bench.plan.seconds, LOGIN_MIN_SECONDS))
        rounds.append(figures)
        report_progress(f"login round {number + 1}/{bench.plan.rounds}", figures)
    return rounds


@dataclass(frozen=True)
class Memory:
    workers: int
    before: int  # bytes, all workers
    after: int
    largest_worker_growth: float  # fraction

    @property
    def growth(self) -> float:
        return self.after / self.before - 1


def memory_growth(bench: Bench, server: Server, probe: Probe) -> Memory:
    """Scenario 5: workers' RSS after a warm-up and again after the plan's number of requests."""
    with server.running():
        bench.drive(probe, requests_wanted=bench.plan.rss_warmup, server=server)
        before = server.worker_rss()
        bench.drive(probe, requests_wanted=bench.plan.rss_requests, server=server)
        after = server.worker_rss()
    if before.keys() != after.keys():
        raise RuntimeError(f"{server.name}: workers were replaced during the memory run")
    return Memory(
        workers=len(before),
        before=sum(before.values()),
        after=sum(after.values()),
        largest_worker_growth=max(after[pid] / before[pid] - 1 for pid in before),
    )


def start_seconds(server: Server, *, times: int) -> list[float]:
    """Scenario 6: from starting gunicorn to the first 200 on the liveness path."""
    timings = []
    for _ in range(times):
        timings.append(server.start())
        server.stop()
    return timings


def report_progress(label: str, figures: dict[str, Load]) -> None:
    summary = ", ".join(f"{name} {load.rps:,.0f}/s p99 {load.p99_ms:.1f} ms" for name, load in figures.items())
    print(f"  {label}: {summary}", flush=True)


# --- setup -----------------------------------------------------------------------------------------


def username(number: int) -> str:
    return f"bench{number:06d}"


def refuse_foreign_database(database_url: str) -> None:
    """The benchmark drops its database: only one named for it."""
    name = database_url.rsplit("/", 1)[-1].split("?")[0]
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the benchmark's database name must contain 'bench'")


def prepare_database(database_url: str, env: dict[str, str], workdir: Path) -> None:
    """Drop and re-create the benchmark's own database, then apply the migrations (manage.py init-db)."""
    for command in (
        [sys.executable, str(ROOT / "scripts" / "create_test_database.py"), database_url],
        [sys.executable, str(ROOT / "manage.py"), "init-db"],
    ):
        finished = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
        if finished.returncode:
            raise SystemExit(f"{shlex.join(command)} failed:\n{finished.stdout}{finished.stderr}")


def seed_users(app, *, count: int) -> str:
    """`count` users sharing one password hash made at the service's cost; returns the hash."""
    with app.app_context():
        password_hash = current_passwords().hash(PASSWORD)
        now = datetime.now(UTC)
        batch = 10_000
        for first in range(1, count + 1, batch):
            rows = [
                {
                    "username": username(number),
                    "email": f"{username(number)}@example.com",
                    "password_hash": password_hash,
                    "role": Role.USER,
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for number in range(first, min(first + batch, count + 1))
            ]
            db.session.execute(User.__table__.insert(), rows)
        db.session.commit()
        if db.session.scalar(select(func.count()).select_from(User)) != count:
            raise RuntimeError("the users table does not hold exactly the seeded users")
        # As autovacuum would leave a table that has lived a while: planner statistics and a visibility
        # map (which lets count(*) and OFFSET walk the index without reading every row).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE users"))
    return password_hash


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


# --- report ----------------------------------------------------------------------------------------


def median_load(rounds: list[dict[str, Load]], name: str) -> Load:
    loads = [figures[name] for figures in rounds]
    return Load(
        requests=sum(load.requests for load in loads),
        rps=statistics.median(load.rps for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=statistics.median(load.p99_ms for load in loads),
        errors=sum(load.errors for load in loads),
    )


def median_ratio(rounds: list[dict[str, Load]], value: Callable[[dict[str, Load]], float]) -> float:
    return statistics.median(value(figures) for figures in rounds)


@dataclass(frozen=True)
class Measured:
    catalogue: dict[str, Probe]
    requests_rounds: list[dict[str, Load]]
    logins: list[dict[str, Load]]
    memory: dict[str, Memory]
    starts: dict[str, list[float]]
    settings: Settings
    gunicorn: dict[str, str]
    postgres: str


@dataclass(frozen=True)
class Target:
    what: str
    measured: str
    met: bool


def report(plan: Plan, measured: Measured) -> tuple[str, list[Target], list[str]]:
    """The results tables in Markdown, the targets, and what makes the figures untrustworthy."""
    catalogue, requests_rounds, logins = measured.catalogue, measured.requests_rounds, measured.logins
    memory, starts, settings = measured.memory, measured.starts, measured.settings

    def ratio(ours: str, reference: str, field: str) -> Callable[[dict[str, Load]], float]:
        return lambda figures: getattr(figures[ours], field) / getattr(figures[reference], field)

    # (scenario number, probe name, its rounds, how its ratio is computed, what the ratio means)
    rows = [
        ("1", "liveness", requests_rounds, ratio("liveness", "bare JSON", "rps"), "req/s vs bare JSON"),
        ("1", "bare JSON", requests_rounds, None, ""),
        ("2", "get-by-id", requests_rounds, ratio("get-by-id", "bare PK SELECT", "rps"), "req/s vs bare PK SELECT"),
        ("2", "bare PK SELECT", requests_rounds, None, ""),
        ("3", "list page 1", requests_rounds, ratio("list page 1", "get-by-id", "p99_ms"), "p99 vs get-by-id"),
        ("3", "list last page", requests_rounds, ratio("list last page", "list page 1", "p99_ms"), "p99 vs page 1"),
        *(
            (
                number,
                f"{name}, baseline",
                requests_rounds,
                ratio(name, f"{name}, baseline", "rps"),
                "ours / baseline req/s",
            )
            for number, name in zip(("1", "2", "3"), BASELINE_PROBES, strict=True)
            if f"{name}, baseline" in catalogue
        ),
        ("4", "login", logins, ratio("login", VERIFY, "p50_ms"), "p50 vs argon2 verify"),
        ("4", VERIFY, logins, None, "in-process, the service's cost; p99: the slowest"),
        ("4", "login, busy", logins, None, ""),
    ]
    lines = [
        "| # | scenario | app | req/s | p50 ms | p99 ms | errors | ratio (median over rounds) |",
        "|---|---|---|--:|--:|--:|--:|---|",
    ]
    problems = []
    ratios = {}
    for number, name, rounds, value, meaning in rows:
        load = median_load(rounds, name)
        probe = catalogue.get(name)
        if load.errors:
            problems.append(f"{name}: {load.errors} request(s) failed")
        if not load.requests:
            problems.append(f"{name}: not one request was answered")
        cell = meaning
        if value is not None:
            ratios[name] = median_ratio(rounds, value)
            cell = f"**{ratios[name]:.2f}** {meaning}"
        lines.append(
            f"| {number} | {probe.title if probe else name} | {probe.app if probe else 'raw'} | {load.rps:,.1f} | "
            f"{load.p50_ms:.2f} | {load.p99_ms:.2f} | {load.errors} | {cell} |"
        )

    mib = 1024 * 1024
    ours_memory, bare_memory = memory["ours"], memory["bare"]
    ours_start, bare_start = statistics.median(starts["ours"]), statistics.median(starts["bare"])
    lines += [
        "",
        "| # | scenario | ours | bare | ours / bare |",
        "|---|---|--:|--:|--:|",
        f"| 5 | workers' RSS after {plan.rss_warmup:,} requests → after {plan.rss_requests:,} more "
        f"({ours_memory.workers} workers, no recycling) | {ours_memory.before / mib:.1f} → "
        f"{ours_memory.after / mib:.1f} MiB ({ours_memory.growth:+.1%}; largest worker "
        f"{ours_memory.largest_worker_growth:+.1%}) | {bare_memory.before / mib:.1f} → "
        f"{bare_memory.after / mib:.1f} MiB ({bare_memory.growth:+.1%}) | "
        f"{ours_memory.after / bare_memory.after:.2f} |",
        f"| 6 | start to first 200 on liveness (median of {len(starts['ours'])}) | {ours_start:.2f} s | "
        f"{bare_start:.2f} s | {ours_start / bare_start:.2f} |",
    ]

    deep_page = catalogue["list last page"].title
    auth = settings.auth
    owasp = auth.ARGON2_MEMORY_COST >= ARGON2_MIN_MEMORY_KIB and auth.ARGON2_TIME_COST >= ARGON2_MIN_TIME_COST
    targets = [
        Target("liveness ≥ 0.85 x bare JSON (req/s)", f"{ratios['liveness']:.2f}", ratios["liveness"] >= 0.85),
        Target("get-by-id ≥ 0.80 x bare PK SELECT (req/s)", f"{ratios['get-by-id']:.2f}", ratios["get-by-id"] >= 0.80),
        Target("list page 1 p99 ≤ 3 x get-by-id p99", f"{ratios['list page 1']:.2f}", ratios["list page 1"] <= 3),
        Target(f"{deep_page} p99 ≤ 2 x page 1 p99", f"{ratios['list last page']:.2f}", ratios["list last page"] <= 2),
        Target(
            f"argon2id cost ≥ OWASP's minimum (m={ARGON2_MIN_MEMORY_KIB} KiB, t={ARGON2_MIN_TIME_COST}, p=1)",
            f"m={auth.ARGON2_MEMORY_COST} KiB, t={auth.ARGON2_TIME_COST}, p={auth.ARGON2_PARALLELISM}",
            owasp,
        ),
        Target("login p50 ≤ 1.10 x argon2 verify", f"{ratios['login']:.2f}", ratios["login"] <= 1.10),
        Target(
            f"RSS growth over {plan.rss_requests:,} requests < 5 %",
            f"{ours_memory.growth:+.1%}",
            ours_memory.growth < 0.05,
        ),
        Target("start to first 200 < 2 s", f"{ours_start:.2f} s", ours_start < 2),
    ]
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    lines += [f"| {target.what} | {target.measured} | {'PASS' if target.met else 'FAIL'} |" for target in targets]
    return "\n".join(lines), targets, problems


def machine_description(*, settings: Settings, gunicorn: dict[str, str], postgres: str) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown CPU")
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("Flask", "SQLAlchemy", "gunicorn", "psycopg", "argon2-cffi")
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[", 1)[0].strip()
    recycling = gunicorn["max_requests"]
    if recycling != "0":
        recycling += f" (+ up to {gunicorn['max_requests_jitter']})"
    return (
        f"- Machine: {os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.system()} {platform.release()}; shared with other work: load average at the end "
        f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}\n"
        f"- Python {platform.python_version()}; {packages}; PostgreSQL {postgres}; {wrk_version}\n"
        f"- Both apps: gunicorn {gunicorn['worker_class']} (the service's: {gunicorn['service_worker_class']}), "
        f"{gunicorn['workers']} workers x "
        f"{gunicorn['threads']} threads, max_requests {recycling}, keep-alive {gunicorn['keepalive']} s. The service: "
        f"FLASK_ENV=production, LOG_LEVEL={settings.logging.LOG_LEVEL} (one JSON access line per request, to a file), "
        "metrics on, NACOS_ENABLED=false, RATE_LIMIT_ENABLED=false"
    )


def write_results(section: str) -> None:
    """Replace the generated part of RESULTS.md and keep what people wrote around it."""
    block = f"{RESULTS_BEGIN}\n{section}\n{RESULTS_END}"
    if RESULTS.exists() and RESULTS_BEGIN in (current := RESULTS.read_text()):
        head, rest = current.split(RESULTS_BEGIN, 1)
        RESULTS.write_text(head + block + rest.split(RESULTS_END, 1)[1])
    else:
        RESULTS.write_text(f"# Benchmark results\n\n{block}\n")


# --- main ------------------------------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny sizes, one round, fail on any error")
    parser.add_argument("--users", type=int, help=f"users seeded (default {FULL.users:,}; smoke {SMOKE.users})")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {FULL.rounds})")
    parser.add_argument("--seconds", type=int, help=f"seconds per measurement (default {FULL.seconds})")
    parser.add_argument("--connections", type=int, help=f"wrk connections (default {FULL.connections})")
    parser.add_argument(
        "--rss-requests", type=int, help=f"requests between the RSS readings (default {FULL.rss_requests:,})"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to DROP and re-create; its name must contain 'bench' (BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        help="gunicorn's max_requests for both apps instead of the service's setting (0: workers are never "
        "replaced; each replacement starts the app again)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the service (e.g. `git worktree add /tmp/base HEAD~1`) measured in the same "
        f"rounds: {', '.join(BASELINE_PROBES)}, to see what a change bought",
    )
    parser.add_argument("--write-results", action="store_true", help=f"write the results into {RESULTS.name}")
    return parser.parse_args()


def measure(arguments: argparse.Namespace, plan: Plan, settings_env: dict[str, str], workdir: Path) -> Measured:
    """Prepare the database, start the apps, run every scenario, and stop everything again."""
    # Nothing from the caller's shell or .env configures either app: only settings_env does.
    service_env = {**hermetic_environment(os.environ), **settings_env, "PYTHONPATH": str(ROOT)}
    if arguments.max_requests is not None:  # the bare app follows: it copies the service's settings
        service_env["GUNICORN_MAX_REQUESTS"] = str(arguments.max_requests)
    print(f"Preparing {arguments.database_url} with {plan.users:,} users ...", flush=True)
    prepare_database(arguments.database_url, service_env, workdir)
    app = create_app(settings_env)
    with app.app_context():
        settings = current_settings()
    password_hash = seed_users(app, count=plan.users)
    with app.app_context():
        postgres = db.session.scalar(text("SHOW server_version"))
        db.session.remove()
        db.engine.dispose()
    bare_env = {
        **hermetic_environment(os.environ),
        "PYTHONPATH": str(BENCH),
        "BARE_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "BARE_ENGINE_OPTIONS": json.dumps(app.config["SQLALCHEMY_ENGINE_OPTIONS"]),
    }
    gunicorn = resolved_gunicorn_settings(service_env, workdir)
    servers = make_servers(
        service_env=service_env, bare_env=bare_env, gunicorn=gunicorn, workdir=workdir, baseline=arguments.baseline
    )
    # For the memory scenario: no recycling, so that the same workers are read before and after.
    lasting = make_servers(
        service_env={**service_env, "GUNICORN_MAX_REQUESTS": "0"},
        bare_env=bare_env,
        gunicorn={**gunicorn, "max_requests": "0"},
        workdir=workdir,
    )
    catalogue = probes(plan.users, baseline=arguments.baseline is not None)
    bench = Bench(plan=plan, servers=servers, settings=settings, login_body=catalogue["login"].body)
    with ExitStack() as cleanup:
        for server in (*servers.values(), *lasting.values()):
            cleanup.callback(server.stop)

        print(f"Requests: {plan.rounds} round(s) of {plan.seconds} s per scenario ...", flush=True)
        for server in servers.values():
            server.start()
        requests_rounds = request_rounds(bench, catalogue)
        logins = login_rounds(bench, catalogue, password_hash)
        for server in servers.values():
            server.stop()

        print(f"Memory: {plan.rss_requests:,} requests after {plan.rss_warmup:,} of warm-up ...", flush=True)
        # Every route a probe uses, drawn at random; a list page costs several reads by id, so it is drawn
        # less often (a path listed more often is drawn more often).
        first_page = f"/api/v1/users?page=1&per_page={PER_PAGE}"
        mixes = {
            "ours": (*["/api/v1/users/{id}"] * 3, first_page, "/api/v1/health/live"),
            "bare": ("/users/{id}", "/json"),
        }
        memory = {
            name: memory_growth(bench, lasting[name], Probe("mixed", name, paths, authenticated=name == "ours"))
            for name, paths in mixes.items()
        }

        print(f"Start-up: {plan.starts} start(s) of each ...", flush=True)
        starts = {name: start_seconds(servers[name], times=plan.starts) for name in ("ours", "bare")}
    return Measured(catalogue, requests_rounds, logins, memory, starts, settings, gunicorn, postgres)


def main() -> int:
    arguments = parse_arguments()
    chosen = {name: getattr(arguments, name) for name in ("users", "rounds", "seconds", "connections", "rss_requests")}
    plan = replace(SMOKE if arguments.smoke else FULL, **{k: v for k, v in chosen.items() if v is not None})
    if plan.users < PER_PAGE * 2:
        raise SystemExit(f"--users must be at least {PER_PAGE * 2}, so that the last page is not page 1")
    refuse_foreign_database(arguments.database_url)
    command = shlex.join(["bench/run.sh", *sys.argv[1:]])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, so that the servers are stopped

    settings_env = {
        "FLASK_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(30),  # real-looking: 40 characters, new for each run
        "JWT_SECRET_KEY": secrets.token_urlsafe(30),
        "DATABASE_URL": arguments.database_url,
        "NACOS_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",  # login throughput measures Argon2, not the limiter
    }
    started = time.monotonic()
    # The servers' working directory and logs: a scratch folder, so that a developer's .env changes
    # nothing. Kept when something failed.
    workdir = Path(tempfile.mkdtemp(prefix="flask-api-bench-"))
    try:
        measured = measure(arguments, plan, settings_env, workdir)
    except BaseException:
        print(f"\nThe servers' logs are in {workdir}", file=sys.stderr)
        raise

    table, targets, problems = report(plan, measured)
    section = "\n".join(
        [
            f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `{command}` ({(time.monotonic() - started) / 60:.0f} min)",
            "",
            machine_description(settings=measured.settings, gunicorn=measured.gunicorn, postgres=measured.postgres),
            f"- {plan.users:,} users; {plan.rounds} round(s) x {plan.seconds} s per scenario, alternating; "
            f"wrk with 1 thread and {plan.connections} connections (login: 1 and {LOGIN_CONNECTIONS})",
            *([f"- baseline: the service as in `{arguments.baseline}`"] if arguments.baseline else []),
            "",
            table,
        ]
    )
    print(f"\n{section}")
    if arguments.write_results:
        write_results(section)
        print(f"\nWritten to {RESULTS.relative_to(ROOT)}")
    if problems:
        print(f"\nFAILED: {'; '.join(problems)}. The servers' logs are in {workdir}.", file=sys.stderr)
        return 1
    shutil.rmtree(workdir)
    if not arguments.smoke and not all(target.met for target in targets):
        print("\nSome targets are not met: see the table.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
