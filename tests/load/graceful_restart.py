"""4. Graceful restart: gunicorn's master gets SIGTERM while logins are in flight.

Every request opens its own connection (Connection: close), so that what happened to it is exact:
- answered: it must be a success;
- refused (no connection could be made): the server had stopped listening; expected after SIGTERM
  and not a failed request, since the server never had it;
- dropped or timed out after connecting: the server had the request and did not answer: a failure.
Logins are the slow requests here (Argon2), so that many are in flight when the signal comes.
"""

from __future__ import annotations

import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.load.driver import REFUSED, Recorder, Report, load_in_background
from tests.load.servers import STOP_TIMEOUT_SECONDS, PrivatePostgres, running_service

NAME = "graceful-restart"
PASSWORD = "load test: granite meadow 6613"
AFTER_EXIT_SECONDS = 1  # the clients go on this long after the master is gone, to see refusals


@dataclass(frozen=True)
class Numbers:
    clients: int
    before_seconds: float


LONG = Numbers(clients=24, before_seconds=10)
SHORT = Numbers(clients=12, before_seconds=3)


def run(numbers: Numbers) -> Report:
    report = Report(
        NAME, f"{numbers.clients} clients logging in, a new connection each; SIGTERM after {numbers.before_seconds:g} s"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        PrivatePostgres() as postgres,
        running_service(Path(tmp), DATABASE_URL=postgres.url) as service,
    ):
        _register(service.base_url)
        recorder = Recorder(service.base_url)
        close = {"Connection": "close"}
        login = {"username": "restart", "password": PASSWORD}

        def client(_number: int) -> None:
            if recorder.request("login", "POST", "/auth/login", json=login, headers=close) is None:
                time.sleep(0.05)  # refused: do not spin

        with load_in_background(client, clients=numbers.clients, limit_seconds=numbers.before_seconds + 120):
            time.sleep(numbers.before_seconds)
            signalled = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            exit_code = service.process.wait(timeout=STOP_TIMEOUT_SECONDS + 30)
            exited = time.monotonic()
            time.sleep(AFTER_EXIT_SECONDS)
        report.outcomes = recorder.outcomes
        report.notes += [f"service log error: {line}" for line in service.logged_errors()[:5]]

    outcomes = report.outcomes
    in_flight = [o for o in outcomes if o.started < signalled < o.finished]
    unanswered = [o for o in outcomes if o.error and o.error != REFUSED]
    refused_early = [o for o in outcomes if o.error == REFUSED and o.started < signalled]
    answered = [o for o in outcomes if o.status is not None]
    report.notes.append(
        f"{len(in_flight)} requests in flight at SIGTERM; gunicorn exited {exited - signalled:.2f} s later "
        f"with status {exit_code}; {sum(o.error == REFUSED for o in outcomes)} refused once it stopped listening"
    )
    report.check("requests were in flight at SIGTERM", in_flight, str(len(in_flight)))
    report.check(
        "zero failed in-flight requests: every connection made was answered",
        not unanswered,
        ", ".join(f"{o.error} {o.started - signalled:+.3f} s" for o in unanswered[:5]),
    )
    report.check("every answer a success (200)", all(o.status == 200 for o in answered), _statuses(answered))
    report.check("no connection refused before SIGTERM", not refused_early, str(len(refused_early)))
    report.check("gunicorn exited cleanly", exit_code == 0, f"status {exit_code}")
    return report


def _register(base_url: str) -> None:
    account = {"username": "restart", "email": "restart@example.com", "password": PASSWORD}
    requests.post(f"{base_url}/auth/register", json=account, timeout=30).raise_for_status()


def _statuses(outcomes) -> str:
    others = sorted({o.status for o in outcomes if o.status != 200})
    return f"others: {others}" if others else ""
