"""The scenarios (requests, logins, memory, start-up), and the run that prepares the database, starts
the apps and runs them all."""

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
from bench.seed import PASSWORD, access_token, prepare_database, seed_users
from bench.servers import COLLECTOR, Server, collector, make_servers, resolved_gunicorn_settings
from bench.wrk import Bench, Load
from tests.processes import ROOT, free_port, hermetic_environment

LOGIN_MIN_SECONDS = 5  # a login takes a good part of a second: shorter runs count next to none


def alternate(names: list[str], round_number: int) -> list[str]:
    """Every other round runs the other way round, so that drift during a round favours no side."""
    return names if round_number % 2 == 0 else names[::-1]


def request_rounds(bench: Bench, catalogue: dict[str, Probe]) -> list[dict[str, Load]]:
    """Every probe but the logins once per round: liveness, the authenticated routes, the list pages."""
    names = [name for name, probe in catalogue.items() if probe.body is None]
    if bench.plan.warmup_seconds:  # the first requests of a worker pay for lazy imports and connections
        for name in names:
            bench.measure(catalogue[name], seconds=bench.plan.warmup_seconds)
    rounds = []
    for number in range(bench.plan.rounds):
        rounds.append({name: bench.measure(catalogue[name]) for name in alternate(names, number)})
        report_progress(f"round {number + 1}/{bench.plan.rounds}", rounds[-1])
    return rounds


def hash_verify(settings: Settings, password_hash: str, *, times: int) -> Load:
    """argon2-cffi's own verify at the service's cost, in this process: the floor of a login. Its
    CPU time counts every thread (Argon2's lanes run in parallel), as the server's does."""
    hasher = argon2.PasswordHasher(
        time_cost=settings.auth.ARGON2_TIME_COST,
        memory_cost=settings.auth.ARGON2_MEMORY_COST,
        parallelism=settings.auth.ARGON2_PARALLELISM,
        type=argon2.Type.ID,
    )
    timings, cpu_started = [], time.process_time()
    for _ in range(times):
        started = time.perf_counter()
        hasher.verify(password_hash, PASSWORD)
        timings.append(time.perf_counter() - started)
    return Load(
        requests=times,
        rps=1 / statistics.median(timings),
        p50_ms=statistics.median(timings) * 1000,
        p99_ms=max(timings) * 1000,
        errors=0,
        cpu_seconds=time.process_time() - cpu_started,
    )


def login_rounds(bench: Bench, catalogue: dict[str, Probe], password_hash: str) -> list[dict[str, Load]]:
    """The login route at one connection, next to the raw verify, and at several."""
    names = [name for name, probe in catalogue.items() if probe.body is not None]
    rounds = []
    for number in range(bench.plan.rounds):
        figures = {}
        for name in alternate([VERIFY, *names], number):
            if name == VERIFY:
                figures[name] = hash_verify(bench.settings, password_hash, times=max(3, bench.plan.seconds))
            else:
                figures[name] = bench.measure(catalogue[name], seconds=max(bench.plan.seconds, LOGIN_MIN_SECONDS))
        rounds.append(figures)
        report_progress(f"login round {number + 1}/{bench.plan.rounds}", figures)
    return rounds


@dataclass(frozen=True)
class Memory:
    workers: int
    before: int  # Pss in bytes, all workers
    after: int
    largest_worker_growth: float  # fraction

    @property
    def growth(self) -> float:
        return self.after / self.before - 1

    @property
    def per_worker(self) -> float:
        return self.after / self.workers


def warm_every_worker(bench: Bench, server: Server, probe: Probe, *, most_times: int = 5) -> dict[int, int]:
    """The workers' Pss after the plan's warm-up, repeated while some worker is still far smaller than
    the largest: connections stay with the worker that accepted them, so one worker can sit out a
    warm-up and would then count its own first requests (imports, pool connections) as growth."""
    for _ in range(most_times):
        bench.drive(probe, requests_wanted=bench.plan.memory_warmup, server=server)
        pss = server.worker_pss()
        if min(pss.values()) >= 0.9 * max(pss.values()):
            break
    return pss


def memory_growth(bench: Bench, server: Server, probe: Probe) -> Memory:
    """The workers' Pss after a warm-up and again after the plan's number of requests."""
    with server.running():
        before = warm_every_worker(bench, server, probe)
        bench.drive(probe, requests_wanted=bench.plan.memory_requests, server=server)
        after = server.worker_pss()
    if before.keys() != after.keys():
        raise RuntimeError(f"{server.name}: workers were replaced during the memory run")
    return Memory(
        workers=len(before),
        before=sum(before.values()),
        after=sum(after.values()),
        largest_worker_growth=max(after[pid] / before[pid] - 1 for pid in before),
    )


def start_seconds(server: Server, *, times: int) -> list[float]:
    """From starting gunicorn to the first 200 on the liveness path."""
    timings = []
    for _ in range(times):
        timings.append(server.start())
        server.stop()
    return timings


def report_progress(label: str, figures: dict[str, Load]) -> None:
    summary = ", ".join(f"{name} {load.rps:,.0f}/s, CPU {load.cpu_ms:.2f} ms" for name, load in figures.items())
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
    # Nothing from the caller's shell or .env configures the apps: only settings_env does (and no
    # OTEL_* variable turns tracing on, but where a server is meant to trace).
    outside = {name: value for name, value in hermetic_environment(os.environ).items() if not name.startswith("OTEL_")}
    service_env = {**outside, **settings_env, "PYTHONPATH": str(ROOT)}
    if arguments.max_requests is not None:  # the floor apps follow: they copy the service's settings
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
    floor_env = {
        **outside,
        "PYTHONPATH": str(BENCH),
        "FLOOR_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "FLOOR_ENGINE_OPTIONS": json.dumps(app.config["SQLALCHEMY_ENGINE_OPTIONS"]),
        "FLOOR_JWT_SECRET_KEY": app.config["JWT_SECRET_KEY"],
    }
    gunicorn = resolved_gunicorn_settings(service_env, workdir)
    with ExitStack() as cleanup:
        tracing = {}
        if COLLECTOR.exists():  # a collector that answers, and an address where nothing listens
            port = cleanup.enter_context(collector(outside, workdir))
            tracing = {"tracing": f"http://127.0.0.1:{port}", "collector down": f"http://127.0.0.1:{free_port()}"}
        servers = make_servers(
            service_env=service_env,
            floor_env=floor_env,
            gunicorn=gunicorn,
            workdir=workdir,
            baseline=arguments.baseline,
            tracing=tracing,
        )
        # For the memory scenario: no recycling, so that the same workers are read before and after.
        lasting = make_servers(
            service_env={**service_env, "GUNICORN_MAX_REQUESTS": "0"},
            floor_env=floor_env,
            gunicorn={**gunicorn, "max_requests": "0"},
            workdir=workdir,
        )
        for server in (*servers.values(), *lasting.values()):
            cleanup.callback(server.stop)
        catalogue = probes(plan.users, servers=servers)
        bench = Bench(plan=plan, servers=servers, settings=settings, token=lambda: access_token(app))

        print(f"Requests: {plan.rounds} round(s) of {plan.seconds} s per scenario ...", flush=True)
        for server in servers.values():
            server.start()
        requests_rounds = request_rounds(bench, catalogue)
        logins = login_rounds(bench, catalogue, password_hash)
        for server in servers.values():
            server.stop()

        print(f"Memory: {plan.memory_requests:,} requests after a warm-up of every worker ...", flush=True)
        # Every route a probe uses, drawn at random; a list page costs several reads by id, so it is drawn
        # less often (a path listed more often is drawn more often).
        first_page = f"/api/v1/users?page=1&per_page={PER_PAGE}"
        mixes = {
            "ours": (*["/api/v1/users/{id}"] * 3, "/api/v1/users/me", first_page, "/api/v1/health/live"),
            "bare": ("/users/{id}", "/json"),
        }
        memory = {
            name: memory_growth(bench, lasting[name], Probe("mixed", name, paths, authenticated=name == "ours"))
            for name, paths in mixes.items()
        }

        print(f"Start-up: {plan.starts} start(s) of each ...", flush=True)
        starts = {name: start_seconds(servers[name], times=plan.starts) for name in ("ours", "bare")}
    return Measured(catalogue, requests_rounds, logins, memory, starts, settings, gunicorn, postgres)
