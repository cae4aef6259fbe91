"""Argon2id password hashing, with the cost taken from the settings."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import AuthSettings


class Passwords:
    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.ARGON2_TIME_COST,
            memory_cost=settings.ARGON2_MEMORY_COST,
            parallelism=settings.ARGON2_PARALLELISM,
            type=argon2.Type.ID,
        )
        # Made now, not at the first unknown login, which would otherwise be slower than the rest.
        self._dummy_hash = self.hash("not a password anyone has")

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
