"""/api/v1/health: readiness (dependencies checked) and liveness (the process answers)."""

from flask_openapi3 import APIBlueprint, Tag

from app.core.errors import errors
from app.core.openapi import view_name
from app.schemas.health import Health, Liveness
from app.services import health as health_service

health = APIBlueprint(
    "health", __name__, url_prefix="/api/v1/health", abp_tags=[Tag(name="health")], operation_id_callback=view_name
)


@health.get("", responses={200: Health, **errors(503)})
def readiness():
    """Ready to serve: the database (and Redis, when configured) answer; 503 with Retry-After otherwise,
    and from SIGTERM on, while the server drains before it stops"""
    return health_service.readiness()


@health.get("/live", responses={200: Liveness})
def liveness():
    """The process is up; checks nothing else"""
    return {"status": "ok"}
