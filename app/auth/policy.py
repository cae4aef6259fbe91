"""Which passwords are accepted: long enough, not too long to hash cheaply, not a well-known one."""

from __future__ import annotations

from functools import cache

import structlog
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from app.core.errors import APIError
from app.extensions import current_settings

log = structlog.get_logger(__name__)


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of leaked sets, as zxcvbn ships them (lower-case)."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password_policy(password: str, *, username: str, field: str = "password") -> None:
    """422 for a password the policy refuses. Length bounds are in the schemas (8 to 128 characters,
    never truncated); here: not the username, and not a common password where that is refused
    (PASSWORD_REJECT_COMMON; production by default). Elsewhere a common one is accepted with a warning,
    so that the README's example (password123) works in development."""
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise _refused(field, "The password must not contain the username.")
    if lowered not in common_passwords():
        return
    if current_settings().reject_common_passwords:
        raise _refused(field, "This password is too common; choose another.")
    log.warning("a common password was accepted; production refuses it (PASSWORD_REJECT_COMMON)")


def _refused(field: str, message: str) -> APIError:
    return APIError(422, "The request is invalid.", details=[{"field": field, "message": message}])
