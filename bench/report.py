"""Medians over rounds, the results tables and targets, the machine's description, and RESULTS.md."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import psutil

from app.config import ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_TIME_COST, Settings
from bench import BENCH
from bench.plan import VARIANTS, VERIFY, Plan, Probe, variant
from bench.scenarios import Measured
from bench.servers import COLLECTOR
from bench.wrk import Load
from tests.processes import ROOT

RESULTS = BENCH / "RESULTS.md"
RESULTS_BEGIN, RESULTS_END = "<!-- results:begin -->", "<!-- results:end -->"


# What a comparison divides: its word in the table, and in the targets.
MEASURES = {
    "cpu_ms": ("CPU", "server CPU per request"),
    "ms_per_request": ("time", "machine time per request, PostgreSQL's included"),
}


@dataclass(frozen=True)
class Comparison:
    """One figure of a probe over the same of another, per round (median over rounds), shown on the
    numerator's line (or `row`'s); a target when it has a bound."""

    numerator: str
    denominator: str
    against: str  # the denominator, in words
    bound: float | None = None  # the target: the ratio at most this
    measure: str = "cpu_ms"  # a Load property
    row: str = ""

    @property
    def meaning(self) -> str:
        return f"{MEASURES[self.measure][0]} vs {self.against}"

    def ratio(self, rounds: list[dict[str, Load]]) -> float | None:
        """None when a side was not measured."""
        if not {self.numerator, self.denominator} <= rounds[0].keys():
            return None
        return statistics.median(
            getattr(figures[self.numerator], self.measure) / getattr(figures[self.denominator], self.measure)
            for figures in rounds
        )


def comparisons() -> list[Comparison]:
    return [
        Comparison("liveness", "bare JSON", "bare JSON", 1.3),
        *(Comparison(name, variant(name, "reference"), "reference", 1.5) for name in VARIANTS["reference"]),
        Comparison("list last page", "list page 1", "page 1", 2, measure="ms_per_request"),
        Comparison("login", VERIFY, VERIFY, 1.05),
        *(
            Comparison(variant(name, server), name, "tracing off", 1.3)
            for server in ("tracing", "collector down")
            for name in VARIANTS[server]
        ),
        *(
            Comparison(name, variant(name, "baseline"), "baseline (ours / baseline)", row=variant(name, "baseline"))
            for name in VARIANTS["baseline"]
        ),
    ]


@dataclass(frozen=True)
class Target:
    what: str
    measured: str
    met: bool | None  # None: not measured


def report(plan: Plan, measured: Measured) -> tuple[str, list[Target], list[str]]:
    """The results tables in Markdown, the targets, and what makes the figures untrustworthy."""
    catalogue, memory, starts, settings = measured.catalogue, measured.memory, measured.starts, measured.settings
    rounds = [
        {**requests, **logins} for requests, logins in zip(measured.requests_rounds, measured.logins, strict=True)
    ]
    shown = {comparison.row or comparison.numerator: comparison for comparison in comparisons()}
    lines = [
        "| scenario | app | req/s | server CPU ms / request | p50 ms | p99 ms | errors | ratio (median over rounds) |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    problems = []
    for name in table_order(catalogue):
        loads = [figures[name] for figures in rounds]
        errors, requests = sum(load.errors for load in loads), sum(load.requests for load in loads)
        if errors:
            problems.append(f"{name}: {errors} request(s) failed")
        if not requests:
            problems.append(f"{name}: not one request was answered")
        cell = "in-process, the service's cost; p99: the slowest" if name == VERIFY else ""
        if name in shown and (ratio := shown[name].ratio(rounds)) is not None:
            cell = f"**{ratio:.2f}** {shown[name].meaning}"
        probe = catalogue.get(name)
        medians = [statistics.median(getattr(load, field) for load in loads) for field in MEDIANS]
        lines.append(
            f"| {probe.title if probe else name} | {probe.app if probe else 'raw'} | {medians[0]:,.1f} | "
            f"{medians[1]:.2f} | {medians[2]:.2f} | {medians[3]:.2f} | {errors} | {cell} |"
        )

    mib = 1024 * 1024
    ours_memory, bare_memory = memory["ours"], memory["bare"]
    ours_start, bare_start = statistics.median(starts["ours"]), statistics.median(starts["bare"])
    pss_ratio = ours_memory.per_worker / bare_memory.per_worker
    lines += [
        "",
        "| scenario | ours | bare | ours vs bare |",
        "|---|--:|--:|--:|",
        f"| worker Pss after the warm-up and {plan.memory_requests:,} requests ({ours_memory.workers} "
        f"workers, no recycling) | {ours_memory.per_worker / mib:.1f} MiB | {bare_memory.per_worker / mib:.1f} MiB "
        f"| {pss_ratio:.2f} x |",
        f"| workers' Pss after the warm-up ({plan.memory_warmup:,} requests, again until every worker has "
        f"served) → after {plan.memory_requests:,} more | "
        f"{ours_memory.before / mib:.1f} → {ours_memory.after / mib:.1f} MiB ({ours_memory.growth:+.1%}; "
        f"largest worker {ours_memory.largest_worker_growth:+.1%}) | {bare_memory.before / mib:.1f} → "
        f"{bare_memory.after / mib:.1f} MiB ({bare_memory.growth:+.1%}) | |",
        f"| start to first 200 on liveness (median of {len(starts['ours'])}) | {ours_start:.2f} s | "
        f"{bare_start:.2f} s | {ours_start - bare_start:+.2f} s |",
    ]

    auth = settings.auth
    owasp = auth.ARGON2_MEMORY_COST >= ARGON2_MIN_MEMORY_KIB and auth.ARGON2_TIME_COST >= ARGON2_MIN_TIME_COST
    targets = [
        *(comparison_target(comparison, rounds, catalogue) for comparison in shown.values() if comparison.bound),
        Target(
            f"argon2id cost ≥ OWASP's minimum (m={ARGON2_MIN_MEMORY_KIB} KiB, t={ARGON2_MIN_TIME_COST}, p=1)",
            f"m={auth.ARGON2_MEMORY_COST} KiB, t={auth.ARGON2_TIME_COST}, p={auth.ARGON2_PARALLELISM}",
            owasp,
        ),
        Target(
            "start to first 200 ≤ bare + 0.5 s", f"{ours_start - bare_start:+.2f} s", ours_start <= bare_start + 0.5
        ),
        Target("worker Pss ≤ 1.5 x bare", f"{pss_ratio:.2f}", pss_ratio <= 1.5),
        Target(
            f"workers' Pss growth over {plan.memory_requests:,} requests < 5 %",
            f"{ours_memory.growth:+.1%}",
            ours_memory.growth < 0.05,
        ),
    ]
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    lines += [f"| {target.what} | {target.measured} | {RESULT[target.met]} |" for target in targets]
    return "\n".join(lines), targets, problems


MEDIANS = ("rps", "cpu_ms", "p50_ms", "p99_ms")
RESULT = {True: "PASS", False: "FAIL", None: "not measured"}


def table_order(catalogue: dict[str, Probe]) -> list[str]:
    """Each of the service's probes, then the same probe on the other servers (and the raw verify
    after the login)."""
    order = []
    for name, probe in catalogue.items():
        if probe.app not in VARIANTS:
            order += [name, *(variant(name, server) for server in VARIANTS if variant(name, server) in catalogue)]
            order += [VERIFY] if name == "login" else []
    return order


def comparison_target(comparison: Comparison, rounds: list[dict[str, Load]], catalogue: dict[str, Probe]) -> Target:
    name = comparison.numerator
    what = (
        f"{catalogue[name].title if name in catalogue else name} ≤ {comparison.bound:g} x {comparison.against} "
        f"({MEASURES[comparison.measure][1]})"
    )
    ratio = comparison.ratio(rounds)
    if ratio is None:
        return Target(what, f"tracing not available (no {COLLECTOR.relative_to(ROOT)})", None)
    return Target(what, f"{ratio:.2f}", ratio <= comparison.bound)


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
        f"- Every app: gunicorn {gunicorn['worker_class']} (the service's: {gunicorn['service_worker_class']}), "
        f"{gunicorn['workers']} workers x "
        f"{gunicorn['threads']} threads, max_requests {recycling}, keep-alive {gunicorn['keepalive']} s. The service: "
        f"FLASK_ENV=production, LOG_LEVEL={settings.logging.LOG_LEVEL} (one JSON access line per request, to a file), "
        f"metrics on, CORS for one origin, RATE_LIMIT_ENABLED={settings.limits.RATE_LIMIT_ENABLED} (counts in "
        "Redis; the login limits raised out of the way), NACOS_ENABLED=false, tracing off but where the table says"
    )


def write_results(section: str) -> None:
    """Replace the generated part of RESULTS.md and keep what people wrote around it."""
    block = f"{RESULTS_BEGIN}\n{section}\n{RESULTS_END}"
    if RESULTS.exists() and RESULTS_BEGIN in (current := RESULTS.read_text()):
        head, rest = current.split(RESULTS_BEGIN, 1)
        RESULTS.write_text(head + block + rest.split(RESULTS_END, 1)[1])
    else:
        RESULTS.write_text(f"# Benchmark results\n\n{block}\n")
