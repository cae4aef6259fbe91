"""2. Database outage: PostgreSQL crashes under load and comes back.

While it is down every answer is 503 with Retry-After (readiness, writes, and a valid token, since
the logins that a token's revocation is checked against live in the database: failing closed),
never a 500; the service answers again within 5 s of it being back; no acknowledged write is lost.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

from tests.load.driver import OutageNumbers, Outcome, Recorder, Report, load_in_background, register_and_log_in
from tests.load.servers import PrivatePostgres, running_service

NAME = "database-outage"
PASSWORD = "load test: quiet harbour 5082"
RECOVERY_LIMIT_SECONDS = 5
# Each needs the database: a write, the readiness check, and a token checked against its login.
REGISTER, READINESS, VALID_TOKEN = "register", "readiness", "users/me (valid token)"


LONG = OutageNumbers(clients=8, before_seconds=10, down_seconds=20, after_seconds=10)
SHORT = OutageNumbers(clients=6, before_seconds=3, down_seconds=5, after_seconds=4)


def run(numbers: OutageNumbers) -> Report:
    report = Report(
        NAME,
        f"{numbers.clients} clients; PostgreSQL crashes (pg_ctl stop -m immediate) after {numbers.before_seconds:g} s, "
        f"is down {numbers.down_seconds:g} s, then {numbers.after_seconds:g} s more",
    )
    serial = itertools.count()  # next() on it is safe from many threads, unlike a generator's
    acknowledged: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, PrivatePostgres() as postgres:
        with running_service(Path(tmp), DATABASE_URL=postgres.url) as service:
            recorder = Recorder(service.base_url)
            token = register_and_log_in(service.base_url, username="db-probe", password=PASSWORD)

            def client(_number: int) -> None:
                name = f"db-{next(serial)}"
                body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
                response = recorder.request(REGISTER, "POST", "/auth/register", json=body)
                if response is not None and response.status_code == 201:
                    acknowledged.append(name)
                recorder.request(READINESS, "GET", "/api/v1/health")
                recorder.request(VALID_TOKEN, "GET", "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})

            limit = numbers.before_seconds + numbers.down_seconds + numbers.after_seconds + 60
            with load_in_background(client, clients=numbers.clients, limit_seconds=limit):
                time.sleep(numbers.before_seconds)
                postgres.stop(mode="immediate")
                down = time.monotonic()
                time.sleep(numbers.down_seconds)
                restarting = time.monotonic()
                postgres.start()
                back = time.monotonic()
                time.sleep(numbers.after_seconds)
            report.outcomes = recorder.outcomes
            report.notes += [f"service log error: {line}" for line in service.logged_errors()[:5]]
        stored = {username for (username,) in postgres.query("SELECT username FROM users")}

    outcomes = report.outcomes
    while_down = [o for o in outcomes if o.within(down, restarting)]
    first_success = min((o.finished for o in outcomes if o.finished > back and _succeeded(o)), default=None)
    recovery = None if first_success is None else first_success - back
    lost = [name for name in acknowledged if name not in stored]
    late_failures = sum(o.status == 503 for o in outcomes if first_success and o.started > first_success)
    report.notes.append(
        f"down for {restarting - down:.1f} s; {len(while_down)} requests answered while down; "
        f"first success {_seconds(recovery)} after PostgreSQL was back; {late_failures} 503s after that"
    )

    report.check("no 500 (no 5xx but 503)", not any((o.status or 0) >= 500 and o.status != 503 for o in outcomes))
    report.check("no connection errors", not any(o.error for o in outcomes))
    report.check(
        "only 503 with Retry-After while it is down",
        while_down and all(o.status == 503 and o.retry_after for o in while_down),
        f"{sum(o.status == 503 and bool(o.retry_after) for o in while_down)}/{len(while_down)}",
    )
    refused_tokens = [o for o in while_down if o.label == VALID_TOKEN]
    report.check(
        "a valid token gets 503, never 200, while the logins' store is down (fails closed)",
        refused_tokens and all(o.status == 503 for o in refused_tokens),
        f"{sum(o.status == 503 for o in refused_tokens)}/{len(refused_tokens)}",
    )
    report.check(
        f"first success within {RECOVERY_LIMIT_SECONDS} s of it being back",
        recovery is not None and recovery <= RECOVERY_LIMIT_SECONDS,
        _seconds(recovery),
    )
    report.check(
        "every write acknowledged with 201 still there",
        acknowledged and not lost,
        f"{len(lost)} of {len(acknowledged)} lost",
    )
    return report


def _succeeded(outcome: Outcome) -> bool:
    return outcome.status is not None and outcome.status < 400


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"
