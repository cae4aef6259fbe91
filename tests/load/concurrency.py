"""1. Concurrency: many clients register at once, some with a name already taken, then log in."""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.load.driver import Recorder, Report, run_each
from tests.load.servers import PrivatePostgres, running_service

NAME = "concurrency"
PASSWORD = "load test: amber kettle 4471"


@dataclass(frozen=True)
class Numbers:
    clients: int
    registrations: int
    duplicate_share: float = 0.10


LONG = Numbers(clients=20, registrations=500)
SHORT = Numbers(clients=10, registrations=100)


@dataclass(frozen=True)
class Account:
    username: str
    email: str


def accounts(numbers: Numbers) -> list[Account]:
    """The registrations to send, a share of them reusing a name sent just before: next to each other
    in the queue, the two are in flight together and race for the name."""
    duplicates = round(numbers.registrations * numbers.duplicate_share)
    unique = numbers.registrations - duplicates
    every = unique // duplicates if duplicates else 0
    queue = []
    for index in range(unique):
        queue.append(Account(f"load-{index}", f"load-{index}@example.com"))
        if every and index % every == 0 and len(queue) < numbers.registrations:
            queue.append(Account(f"load-{index}", f"load-{index}-again@example.com"))
    return queue


def run(numbers: Numbers) -> Report:
    report = Report(
        NAME,
        f"{numbers.clients} clients, {numbers.registrations} registrations with "
        f"{numbers.duplicate_share:.0%} duplicate names, then every created user logs in",
    )
    queue = accounts(numbers)
    statuses: dict[int, int | None] = {}  # position in the queue -> status of its registration
    with tempfile.TemporaryDirectory() as tmp, PrivatePostgres() as postgres:
        with running_service(Path(tmp), DATABASE_URL=postgres.url) as service:
            recorder = Recorder(service.base_url)

            def register(position: int) -> None:
                account = queue[position]
                body = {"username": account.username, "email": account.email, "password": PASSWORD}
                response = recorder.request("register", "POST", "/auth/register", json=body)
                statuses[position] = response.status_code if response is not None else None

            run_each(range(len(queue)), register, clients=numbers.clients)
            created = sorted({queue[p].username for p, status in statuses.items() if status == 201})
            logins: Counter[int | None] = Counter()

            def login(username: str) -> None:
                response = recorder.request(
                    "login", "POST", "/auth/login", json={"username": username, "password": PASSWORD}
                )
                logins[response.status_code if response is not None else None] += 1

            run_each(created, login, clients=numbers.clients)
            report.outcomes = recorder.outcomes
            report.notes += [f"service log error: {line}" for line in service.logged_errors()[:5]]
        stored = sorted(username for (username,) in postgres.query("SELECT username FROM users"))

    by_name: dict[str, list[int | None]] = defaultdict(list)
    for position, account in enumerate(queue):
        by_name[account.username].append(statuses.get(position))
    raced = {name: sorted(s, key=str) for name, s in by_name.items() if len(s) > 1}
    single = [s[0] for s in by_name.values() if len(s) == 1]
    created_count = sum(status == 201 for status in statuses.values())

    report.check("zero 5xx", not any((o.status or 0) >= 500 for o in report.outcomes))
    report.check("zero connection errors", not any(o.error for o in report.outcomes))
    report.check(
        "users in the database = 201s returned",
        stored == created and len(stored) == created_count,
        f"{len(stored)} rows, {created_count} 201s",
    )
    report.check(
        "every duplicate a 409 (one 201 and one 409 per name sent twice)",
        raced and all(s == [201, 409] for s in raced.values()),
        f"{sum(s == [201, 409] for s in raced.values())}/{len(raced)} names",
    )
    report.check(
        "every name sent once created (201)",
        all(status == 201 for status in single),
        f"{sum(status == 201 for status in single)}/{len(single)}",
    )
    report.check(
        "every created user able to log in (200)",
        logins == Counter({200: len(created)}),
        f"{logins[200]}/{len(created)}",
    )
    return report
