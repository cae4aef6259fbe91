"""/monitoring/metrics: Prometheus text for scrapers, JSON for people."""

import secrets
from pathlib import Path
from typing import Literal

from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import Field

from app.core.errors import APIError, errors
from app.core.metrics import prometheus_text, snapshot
from app.core.openapi import view_name
from app.extensions import current_settings, current_version, db
from app.schemas.fields import QueryParameters

metrics = APIBlueprint(
    "metrics", __name__, url_prefix="/monitoring", abp_tags=[Tag(name="monitoring")], operation_id_callback=view_name
)


class MetricsQuery(QueryParameters):
    format: Literal["prometheus", "json"] | None = Field(
        None, description="json for people; Prometheus text otherwise (or send Accept: application/json)"
    )


@metrics.get(
    "/metrics",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}, "application/json": {}}},
        **errors(401, 422),
    },
    description="Prometheus text exposition by default; OpenMetrics (with trace exemplars when tracing is on) "
    "for Accept: application/openmetrics-text. With METRICS_TOKEN set, send it as a bearer token.",
)
def get_metrics(query: MetricsQuery):
    """Request, system, process, app and Nacos metrics"""
    _check_token()
    figures = {"version": current_version(), "data_dir": _data_directory()}
    wants_json = query.format == "json" or (
        query.format is None
        and request.accept_mimetypes.best_match(["text/plain", "application/json"]) == "application/json"
    )
    if wants_json:
        return snapshot(**figures)
    text, content_type = prometheus_text(**figures, accept=request.headers.get("Accept"))
    return Response(text, content_type=content_type)


def _data_directory() -> str:
    """Where the data lives: the SQLite file's folder, else the instance folder, else here."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(Path(url.database).resolve().parent)
    return current_app.instance_path if Path(current_app.instance_path).is_dir() else str(Path.cwd())


def _check_token() -> None:
    token = current_settings().metrics.METRICS_TOKEN
    if token is None:
        return
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(supplied.encode(), token.get_secret_value().encode()):
        raise APIError(401, "A valid metrics token is required.", headers={"WWW-Authenticate": "Bearer"})
