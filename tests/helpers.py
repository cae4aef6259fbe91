"""Helpers the tests share: settings, logging in, and what an error response must look like."""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models import User

T = TypeVar("T")

PASSWORD = "correct horse battery"
SECRET = "s" * 40
JWT_SECRET = "j" * 64
# Secrets production accepts (long, varied, different from each other).
STRONG_SECRET = "Xk2-pW7vNq4_Hs9dLm3Rz8Tb6Cy1Jf5gVa0e"
STRONG_JWT_SECRET = "Gd8_Ln3Vr7-Qx1Kp5Zm9Wt2Hb6Jc4Fs0YeNu"
# The Redis the Redis tests use (scripts/test.sh starts one).
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def settings_for_tests(database_url: str, **overrides: Any) -> dict[str, Any]:
    """Settings for a test app: real behaviour, cheap hashing."""
    return {
        "FLASK_ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "JWT_SECRET_KEY": JWT_SECRET,
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 1024,
        "ARGON2_PARALLELISM": 1,
        "LOG_FORMAT": "json",
        "REDIS_URL": None,
        "NACOS_ENABLED": False,  # the Nacos tests turn it on against their fake
        "RATE_LIMIT_ENABLED": False,  # the rate-limit tests turn it on
        **overrides,
    }


def production_settings(database_url: str, **overrides) -> dict:
    """Sound production settings (OWASP's minimum Argon2 cost keeps the start quick), then the overrides."""
    sound = {
        "FLASK_ENV": "production",
        "SECRET_KEY": STRONG_SECRET,
        "JWT_SECRET_KEY": STRONG_JWT_SECRET,
        "ARGON2_TIME_COST": 2,
        "ARGON2_MEMORY_COST": 19 * 1024,
    }
    return settings_for_tests(database_url, **{**sound, **overrides})


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def attempt_login(client: FlaskClient, username: str, password: str = PASSWORD, **headers: str):
    """POST /auth/login, whatever the answer (login() insists on a 200)."""
    return client.post("/auth/login", json={"username": username, "password": password}, headers=headers)


def me(client: FlaskClient, token: str):
    return client.get("/api/v1/users/me", headers=bearer(token))


def refresh(client: FlaskClient, token: str):
    return client.post("/auth/refresh", headers=bearer(token))


# Endpoints (blueprint names) of the documentation itself, which is not in the OpenAPI document.
DOCUMENTATION_ENDPOINTS = {"static", "docs", "openapi", "swagger", "redoc"}


def served_operations(app: Flask) -> dict[tuple[str, str], str]:
    """Every (method, path) the app serves outside its documentation, with the path written as in
    the OpenAPI document, mapped to the name of its view function."""
    return {
        (method.lower(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)): rule.endpoint.rsplit(".", 1)[-1]
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] not in DOCUMENTATION_ENDPOINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    """The response is an error in the project's envelope; returns the body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def get_user_row(app: Flask, user_id: int) -> User | None:
    with app.app_context():
        user = db.session.get(User, user_id)
        if user is not None:
            db.session.expunge(user)
        return user


def at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """call(0) ... call(count - 1), each in its own thread, all released together; their results
    in the order they finished."""
    barrier = threading.Barrier(count)
    results: list[T] = []

    def run(index: int) -> None:
        barrier.wait()
        results.append(call(index))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def outside_tool(name: str) -> str:
    """The path of a program a test needs from outside Python: the venv's own (scripts/test.sh installs
    them into .venv/bin), else one on PATH.

    When it is missing the test skips, saying so, except under CI=true, where it fails: CI runs every test.
    """
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if path:
        return path
    reason = f"{name} is not installed (scripts/test.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true runs every test")
    pytest.skip(reason)
