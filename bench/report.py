"""Medians over rounds, the results tables and targets, the machine's description, and RESULTS.md."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import psutil

from app.config import ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_TIME_COST, Settings
from bench import BENCH
from bench.plan import BASELINE_PROBES, VERIFY, Plan
from bench.scenarios import Measured
from bench.wrk import Load

RESULTS = BENCH / "RESULTS.md"
RESULTS_BEGIN, RESULTS_END = "<!-- results:begin -->", "<!-- results:end -->"


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
