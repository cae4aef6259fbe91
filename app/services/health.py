"""Readiness: the dependencies a request needs answer, and the server is not stopping.

Nacos is reported, never a reason to refuse.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import text

from app.core.errors import RETRY_AFTER_SECONDS, APIError
from app.extensions import current_redis, current_settings, current_version, db
from app.nacos.state import registration_state

log = structlog.get_logger(__name__)
STARTED = time.monotonic()


def readiness() -> dict[str, Any]:
    # The registrar's state, which the workers read anyway: no extra cost on any other route.
    nacos = registration_state()
    if nacos.draining:
        raise APIError(
            503,
            "This instance is shutting down, send requests to another one.",
            details=[{"field": "instance", "message": "draining"}],
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    checks = {"database": lambda: db.session.execute(text("SELECT 1"))}
    redis = current_redis()
    if redis is not None:
        checks["redis"] = redis.ping
    results = {name: _timed(check) for name, check in checks.items()}
    failed = [name for name, result in results.items() if result is None]
    if failed:
        raise APIError(
            503,
            "A dependency is unavailable, try again shortly.",
            details=[{"field": name, "message": "unreachable"} for name in failed],
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return {
        "status": "ok",
        "version": current_version(),
        "uptime_seconds": round(time.monotonic() - STARTED, 3),
        "checks": {name: {"status": "ok", "latency_ms": latency} for name, latency in results.items()},
        "nacos": {
            "enabled": current_settings().nacos.NACOS_ENABLED,
            "registered": nacos.registered,
        },
    }


def _timed(check: Callable[[], object]) -> float | None:
    """Milliseconds the check took, or None when it failed (the reason goes to the log only)."""
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure of a dependency means "not ready"
        log.warning("readiness check failed", error=f"{type(exc).__name__}: {exc}")
        return None
    return round((time.perf_counter() - started) * 1000, 2)
