"""Schemathesis hooks for tests/fuzz/run.py (loaded through SCHEMATHESIS_HOOKS=tests.fuzz.hooks).

The fuzzer acts as an administrator, so that every operation is reachable, and may do anything to
any account, its own included: when it has locked itself out (renamed, demoted, disabled, deleted
or re-passworded itself), it makes a new administrator account and goes on as that one.
"""

from __future__ import annotations

import itertools
import os

import requests
import schemathesis

from tests.fuzz.run import ADMIN_PASSWORD, create_admin

BASE_URL = os.environ.get("FUZZ_BASE_URL", "")
_account_numbers = itertools.count(1)


@schemathesis.auth()
class AdminLogin:
    """Logs in again whenever a request answers 401 (a fuzzed logout or refresh revokes the login)."""

    username = "fuzz-admin"

    def get(self, case, ctx) -> dict[str, str]:
        tokens = self._login()
        if tokens is None:
            AdminLogin.username = f"fuzz-admin-{next(_account_numbers)}"
            create_admin(dict(os.environ), username=self.username)
            tokens = self._login()
        assert tokens is not None, "a new administrator could not log in"
        return tokens

    def _login(self) -> dict[str, str] | None:
        """Tokens of the current administrator, or None once it is no longer a working one."""
        body = {"username": self.username, "password": ADMIN_PASSWORD}
        response = requests.post(f"{BASE_URL}/auth/login", json=body, timeout=30)
        if response.status_code == 401:
            return None
        response.raise_for_status()
        tokens = response.json()
        me = requests.get(f"{BASE_URL}/api/v1/users/me", headers=_bearer(tokens["access_token"]), timeout=30)
        return tokens if me.json().get("role") == "admin" else None

    def set(self, case, data: dict[str, str], ctx) -> None:
        token = data["refresh_token"] if case.path == "/auth/refresh" else data["access_token"]
        case.headers = {**(case.headers or {}), **_bearer(token)}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
