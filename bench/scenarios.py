"""The six scenarios, and the run that prepares the database, starts the apps and runs them all."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import argon2
from sqlalchemy import text

from app import create_app
from app.config import Settings
from app.extensions import current_settings, db
from bench import BENCH
from bench.plan import PER_PAGE, VERIFY, Plan, Probe, probes
from bench.seed import PASSWORD, prepare_database, seed_users
from bench.servers import Server, make_servers, resolved_gunicorn_settings
from bench.wrk import Bench, Load
from tests.processes import ROOT, hermetic_environment

LOGIN_MIN_SECONDS = 5  # a login takes a good part of a second: shorter runs count next to none


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
