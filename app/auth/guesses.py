"""Budgets of password guesses (ASVS V2.2.1), shared by logins and by the current-password check of
account changes, so that slowing guessers down does not let them lock the owner out.

- Per account and client address, failed checks (RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS, 5 a minute and 20
  an hour): guessing from one address slows down; the owner elsewhere is untouched.
- Per account, every check from an address that has not logged in to it in the last 30 days
  (RATE_LIMIT_LOGIN_ACCOUNT, 100 an hour): guessers spread over many addresses get no more than
  that together. An address the owner has logged in from keeps only its own budget, so the owner
  logs in from there even while the account's budget is spent.

A check is counted before the password is verified, so that parallel guesses cannot overrun a
budget; a right password then gives its address's failures back. The counts live in the limiter's
storage (Redis when configured, memory otherwise), as Flask-Limiter's own do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog
from flask import current_app
from flask_limiter.util import get_remote_address
from limits import parse, parse_many

from app.core.errors import APIError
from app.extensions import current_settings, limit_from_setting, limiter
from app.models import User

log = structlog.get_logger(__name__)

# Remembering an address is spending a budget of one login per 30 days: the storage expires it.
KNOWN_ADDRESS = parse("1 per 30 days")


def account_of(*, user_id: int | None, name: str) -> str:
    """The budgets' name for an account, whichever of its names (username or email) it was reached
    by; a name with no account counts as itself, so that the limits tell nothing about which exist."""
    return f"user:{user_id}" if user_id is not None else f"name:{name.strip().lower()}"


def check_current_password(*, user: User, password: str) -> bool:
    """The current-password check of an account change: limited per user (RATE_LIMIT_CURRENT_PASSWORD),
    since each one costs a hash, and a guess like a login's, since a stolen token must be no oracle."""
    account = account_of(user_id=user.id, name=user.username)
    with limit_from_setting("RATE_LIMIT_CURRENT_PASSWORD", key_func=lambda: account):
        return check_password_guess(account=account, verify=lambda: user.check_password(password))


def check_password_guess(*, account: str, verify: Callable[[], bool]) -> bool:
    """verify() (a password check against `account`) within the account's budgets; 429 instead when
    one is spent."""
    limits = current_settings().limits
    if not limits.RATE_LIMIT_ENABLED:
        return verify()
    address = get_remote_address()
    failures = _keyed("password-failures", account, address)
    known = _keyed("logged-in-from", account, address)
    with _uncounted_when_storage_fails():
        _spend(limits.RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS, failures)
        if limiter.limiter.test(KNOWN_ADDRESS, *known):  # an address it has not logged in from
            _spend(limits.RATE_LIMIT_LOGIN_ACCOUNT, _keyed("password-checks-from-new-addresses", account))
    if not verify():
        return False
    with _uncounted_when_storage_fails():
        for item in parse_many(limits.RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS):
            limiter.limiter.clear(item, *failures)
        limiter.limiter.hit(KNOWN_ADDRESS, *known)
    return True


@contextmanager
def _uncounted_when_storage_fails() -> Iterator[None]:
    """Flask-Limiter switches to memory when it meets a Redis failure, at this request's own limit
    (the login's per address, the change's per user); a request caught mid-call when Redis goes
    away afterwards goes on uncounted, logged, as Flask-Limiter's swallowed errors do."""
    try:
        yield
    except limiter.storage.base_exceptions:
        log.exception("rate-limit storage failed during a password check; not counted")


def _spend(limits: str, identifiers: tuple[str, ...]) -> None:
    """Count one against each of `limits` (a RATE_LIMIT_* value); 429 when one is already spent."""
    for item in parse_many(limits):
        if not limiter.limiter.hit(item, *identifiers):
            reset_at = limiter.limiter.get_window_stats(item, *identifiers).reset_time
            retry_after = str(max(1, math.ceil(reset_at - time.time())))
            raise APIError(429, "Too many password attempts; try again later.", headers={"Retry-After": retry_after})


def _keyed(*identifiers: str) -> tuple[str, ...]:
    # The prefix Flask-Limiter gives its own keys, so that services sharing a Redis keep apart.
    return (current_app.config["RATELIMIT_KEY_PREFIX"], *identifiers)
