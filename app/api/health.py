"""/api/v1/health: readiness (dependencies checked) and liveness (the process answers)."""

import time

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy import text

from app.api.schemas import Health, Liveness
from app.errors import errors
from app.extensions import db

STARTED = time.monotonic()

health = APIBlueprint("health", __name__, url_prefix="/api/v1/health", abp_tags=[Tag(name="health")])


@health.get("", responses={200: Health, **errors(503)})
def readiness():
    """Ready to serve: the database answers. 503 with Retry-After when it does not."""
    started = time.perf_counter()
    db.session.execute(text("SELECT 1"))  # a failure becomes the envelope's 503 (app.errors)
    return {
        "status": "ok",
        "version": current_app.extensions["version"],
        "uptime_seconds": round(time.monotonic() - STARTED, 3),
        "checks": {"database": {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}},
    }


@health.get("/live", responses={200: Liveness})
def liveness():
    """The process is up; checks nothing else"""
    return {"status": "ok"}
