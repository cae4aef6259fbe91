"""What is measured and how much: the run's sizes (full or smoke) and the request mixes (probes)."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, replace

from bench.seed import PASSWORD, username

PER_PAGE = 20
LOGIN_CONNECTIONS = 4
VERIFY = "argon2 verify"  # the raw hash verification a login is compared with


@dataclass(frozen=True)
class Plan:
    users: int
    rounds: int
    seconds: int  # per wrk measurement
    connections: int
    warmup_seconds: int
    memory_warmup: int  # requests before the first memory reading
    memory_requests: int  # requests between the two readings
    starts: int


FULL = Plan(
    users=100_000,
    rounds=5,
    seconds=10,
    connections=10,
    warmup_seconds=3,
    memory_warmup=5_000,
    memory_requests=50_000,
    starts=5,
)


SMOKE = Plan(
    users=200,
    rounds=1,
    seconds=1,
    connections=4,
    warmup_seconds=0,
    memory_warmup=200,
    memory_requests=1_000,
    starts=1,
)


@dataclass(frozen=True)
class Probe:
    """A request mix on one server; `{id}` in a path is a random user id."""

    name: str
    app: str  # the server: "ours", "bare", or one of VARIANTS
    paths: tuple[str, ...]
    authenticated: bool = False
    body: str | None = None
    connections: int | None = None  # None: the plan's
    label: str = ""  # in the table, when not the name

    @property
    def title(self) -> str:
        return self.label or self.name


# The other servers, and which of the service's probes each is measured on, with the same requests
# (the reference app serves the same paths): the probe "get-by-id, reference" is "get-by-id" there.
VARIANTS = {
    "reference": ("/users/me", "get-by-id", "list page 1"),  # bench/reference_app.py
    "tracing": ("liveness", "get-by-id"),  # the service with tracing on, its collector reachable
    "collector down": ("liveness", "get-by-id"),  # tracing on, nothing listening where it exports
    "baseline": ("liveness", "get-by-id", "list page 1"),  # --baseline
}


def variant(name: str, server: str) -> str:
    return f"{name}, {server}"


def probes(users: int, *, servers: Collection[str]) -> dict[str, Probe]:
    """Every probe on the servers there are."""
    last_page = math.ceil(users / PER_PAGE)
    login = json.dumps({"username": username(1), "password": PASSWORD})
    catalogue = {
        probe.name: probe
        for probe in (
            Probe("liveness", "ours", ("/api/v1/health/live",)),
            Probe("bare JSON", "bare", ("/json",)),
            Probe("/users/me", "ours", ("/api/v1/users/me",), authenticated=True),
            Probe("get-by-id", "ours", ("/api/v1/users/{id}",), authenticated=True),
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
    for server, names in VARIANTS.items():
        if server in servers:
            for name in names:
                catalogue[variant(name, server)] = replace(catalogue[name], name=variant(name, server), app=server)
    return catalogue
