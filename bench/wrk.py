"""Sending the load: one wrk run, and the driver that points it at a running app."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace

from app.config import Settings
from bench import BENCH
from bench.plan import Plan, Probe
from bench.servers import Server


@dataclass(frozen=True)
class Load:
    """One wrk run, and the CPU time the server spent meanwhile."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_seconds: float = 0.0

    @property
    def cpu_ms(self) -> float:
        """Server CPU per request, in milliseconds."""
        return self.cpu_seconds * 1000 / self.requests if self.requests else math.nan

    @property
    def ms_per_request(self) -> float:
        """Wall time per request of the whole machine (1 / req/s): with every side CPU-bound on the
        same cores, it covers PostgreSQL's work, which the server's CPU does not."""
        return 1000 / self.rps if self.rps else math.nan


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

    def __init__(self, *, plan: Plan, servers: dict[str, Server], settings: Settings, token: Callable[[], str]) -> None:
        self.plan = plan
        self.servers = servers
        self.settings = settings
        self.token = token  # a fresh access token (they live 15 minutes at most, shorter than a full run)

    def measure(self, probe: Probe, *, seconds: int | None = None, server: Server | None = None) -> Load:
        server = server or self.servers[probe.app]
        token = self.token() if probe.authenticated else None
        cpu_before = server.cpu_seconds()
        load = wrk(
            server.url,
            seconds=seconds or self.plan.seconds,
            connections=probe.connections or self.plan.connections,
            paths=probe.paths,
            ids=self.plan.users,
            token=token,
            body=probe.body,
        )
        return replace(load, cpu_seconds=server.cpu_seconds() - cpu_before)

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
