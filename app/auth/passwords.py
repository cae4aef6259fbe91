"""Argon2id password hashing, with the cost taken from the settings."""

from __future__ import annotations

from functools import cache

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import AuthSettings


class Passwords:
    def __init__(self, settings: AuthSettings) -> None:
        self._hasher, self._dummy_hash = _hasher_and_dummy_hash(
            settings.ARGON2_TIME_COST, settings.ARGON2_MEMORY_COST, settings.ARGON2_PARALLELISM
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def waste_time(self, password: str) -> None:
        """Spend what a real verification costs, so an unknown user cannot be told by timing."""
        self.verify(self._dummy_hash, password)


@cache
def _hasher_and_dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> tuple[argon2.PasswordHasher, str]:
    """The hash for unknown users is made at start, not at the first unknown login, which would
    otherwise be slower than the rest; and once per process and cost: gunicorn's master makes it
    before it forks (gunicorn.conf.py), so that a worker's start does not pay it again."""
    hasher = argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=argon2.Type.ID
    )
    return hasher, hasher.hash("not a password anyone has")
