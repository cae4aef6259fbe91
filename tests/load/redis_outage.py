"""5. Redis outage: Redis (the rate limits' shared store) is killed under load, then comes back.

Logins keep working; the rate limits still apply, each worker counting in memory; and revocation
fails closed: a token revoked by logout is never accepted again, and a request whose revocation
check cannot be made gets 503, never 200. (Today the revocations live in the database, so Redis
going away leaves them untouched; the checks hold whichever store keeps them.)

Every request has a client address of its own (X-Forwarded-For, believed behind TRUSTED_PROXY_COUNT=1),
so that the per-address limit stays out of the load's way and is measured on one address only.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import requests

from tests.load.driver import OutageNumbers, Outcome, Recorder, Report, load_in_background
from tests.load.servers import WORKERS, PrivatePostgres, PrivateRedis, running_service

NAME = "redis-outage"
USERNAME = "limits"
GUESSED = "guessed"  # the account wrong passwords are sent for: its own limit must not slow USERNAME down
PASSWORD = "load test: silver orchard 3957"
LOGIN_LIMIT = 5  # per address and minute: the load's addresses each log in less often than that
LOGIN, WRONG_PASSWORD = "login", "login (wrong password)"
VALID, REVOKED = "users/me (valid token)", "users/me (revoked token)"
_serial = itertools.count(1)  # next() on it is safe from many threads, unlike a generator's


LONG = OutageNumbers(clients=8, before_seconds=10, down_seconds=30, after_seconds=10)
SHORT = OutageNumbers(clients=6, before_seconds=3, down_seconds=6, after_seconds=3)


def run(numbers: OutageNumbers) -> Report:
    report = Report(
        NAME,
        f"{numbers.clients} clients; Redis is killed after {numbers.before_seconds:g} s, down "
        f"{numbers.down_seconds:g} s, back for {numbers.after_seconds:g} s; login limit {LOGIN_LIMIT}/min per address",
    )
    with tempfile.TemporaryDirectory() as tmp, PrivatePostgres() as postgres, PrivateRedis() as redis:
        settings = {
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "TRUSTED_PROXY_COUNT": "1",
            "RATE_LIMIT_LOGIN": f"{LOGIN_LIMIT} per minute",
            # Each request comes from a new address: the account's budget for new addresses would
            # end the right logins too (app/auth/guesses.py). Each address's own budget stays.
            "RATE_LIMIT_LOGIN_ACCOUNT": "1000000 per minute",
        }
        with running_service(Path(tmp), **settings) as service:
            base = service.base_url
            _register(base, USERNAME)
            _register(base, GUESSED)
            valid = _login(base, _new_address())
            revoked = _login(base, _new_address())
            revoked_before = _logout(base, revoked)
            to_revoke_while_down = _login(base, _new_address())
            recorder = Recorder(base)
            login = {"username": USERNAME, "password": PASSWORD}
            wrong = {"username": GUESSED, "password": "not the password"}

            def client(_number: int) -> None:
                recorder.request(LOGIN, "POST", "/auth/login", json=login, headers=_from(_new_address()))
                recorder.request(WRONG_PASSWORD, "POST", "/auth/login", json=wrong, headers=_from(_new_address()))
                recorder.request(VALID, "GET", "/api/v1/users/me", headers=_bearer(valid))
                recorder.request(REVOKED, "GET", "/api/v1/users/me", headers=_bearer(revoked))

            limit = numbers.before_seconds + numbers.down_seconds + numbers.after_seconds + 60
            with load_in_background(client, clients=numbers.clients, limit_seconds=limit):
                time.sleep(numbers.before_seconds)
                with_redis = _logins_until_limited(recorder, _new_address(), "limit probe (Redis up)")
                redis.kill()
                down = time.monotonic()
                without_redis = _logins_until_limited(recorder, _new_address(), "limit probe (Redis down)")
                readiness = requests.get(f"{base}/api/v1/health", timeout=10).status_code
                logout_while_down = recorder.request(
                    "logout", "POST", "/auth/logout", headers=_bearer(to_revoke_while_down)
                )
                time.sleep(max(0.0, down + numbers.down_seconds - time.monotonic()))
                redis.start()
                back = time.monotonic()
                time.sleep(numbers.after_seconds)
            after = requests.get(f"{base}/api/v1/users/me", headers=_bearer(to_revoke_while_down), timeout=10)
            report.outcomes = recorder.outcomes
            report.notes += [f"service log error: {line}" for line in service.logged_errors()[:5]]

    outcomes = report.outcomes
    while_down = [o for o in outcomes if o.within(down, back)]
    logout_status = logout_while_down.status_code if logout_while_down is not None else None
    report.notes.append(
        f"logins from one address until a 429: {_attempts(with_redis)} with Redis, "
        f"{_attempts(without_redis)} without (memory counts per worker, {WORKERS} workers); "
        f"readiness while Redis was down: {readiness}; a logout while it was down: {logout_status}"
    )
    report.check(
        "no 500 and no connection errors (a 503 is judged below, where it may be right)",
        not any(o.error or ((o.status or 0) >= 500 and o.status != 503) for o in outcomes),
    )
    logins = [o for o in outcomes if o.label == LOGIN]
    report.check(
        "logins keep working (200), before, during and after the outage",
        any(o in while_down for o in logins) and all(o.status == 200 for o in logins),
        f"{sum(o.status == 200 for o in logins)}/{len(logins)}, {sum(o in while_down for o in logins)} while down",
    )
    wrong_passwords = [o for o in outcomes if o.label == WRONG_PASSWORD]
    report.check(
        "wrong passwords get 401 (or 429 once the account's limit is reached), during the outage too",
        all(o.status in (401, 429) for o in wrong_passwords),
        _statuses(wrong_passwords),
    )
    report.check(
        f"rate limits fall back to memory: one address is limited within {LOGIN_LIMIT * WORKERS + 1} logins",
        without_redis is not None and without_redis[-1].retry_after is not None,
        _attempts(without_redis),
    )
    revoked_uses = [o for o in outcomes if o.label == REVOKED]
    report.check(
        "a token revoked by logout stays refused: 401 (503 allowed only while Redis is down)",
        revoked_before == 204
        and all(o.status == 401 or (o.status == 503 and _overlaps(o, down, back)) for o in revoked_uses),
        _statuses(revoked_uses),
    )
    valid_while_down = [o for o in while_down if o.label == VALID]
    report.check(
        "a valid token's requests while Redis is down: 200 when the revocations are not in Redis, else 503",
        valid_while_down and all(o.status in (200, 503) for o in valid_while_down),
        _statuses(valid_while_down),
    )
    report.check(
        "a logout while Redis is down either takes effect (204, then 401) or is refused (503)",
        (logout_status == 204 and after.status_code == 401) or logout_status == 503,
        f"logout {logout_status}, the token afterwards {after.status_code}",
    )
    return report


def _logins_until_limited(recorder: Recorder, address: str, label: str) -> list[Outcome] | None:
    """Logins from one new address until one gets 429: the outcomes, or None if none did within
    what memory-held counts can let through (the limit in each worker)."""
    for _ in range(LOGIN_LIMIT * WORKERS + 1):
        recorder.request(
            label, "POST", "/auth/login", json={"username": USERNAME, "password": PASSWORD}, headers=_from(address)
        )
        sent = recorder.labelled(label)
        if sent[-1].status == 429:
            return sent
    return None


def _overlaps(outcome: Outcome, start: float, end: float) -> bool:
    return outcome.started <= end and outcome.finished >= start


def _attempts(outcomes: list[Outcome] | None) -> str:
    return "no 429" if outcomes is None else f"429 at login {len(outcomes)}"


def _statuses(outcomes: list[Outcome]) -> str:
    counts = {}
    for outcome in outcomes:
        counts[outcome.status or outcome.error] = counts.get(outcome.status or outcome.error, 0) + 1
    return " ".join(f"{status}x{count}" for status, count in counts.items())


def _new_address() -> str:
    """A client address no request has used yet, from IPv6's documentation prefix (nobody's)."""
    return f"2001:db8::{next(_serial):x}"


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _register(base: str, username: str) -> None:
    account = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    requests.post(f"{base}/auth/register", json=account, timeout=30).raise_for_status()


def _login(base: str, address: str) -> str:
    login = {"username": USERNAME, "password": PASSWORD}
    response = requests.post(f"{base}/auth/login", json=login, headers=_from(address), timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def _logout(base: str, token: str) -> int:
    return requests.post(f"{base}/auth/logout", headers=_bearer(token), timeout=30).status_code
