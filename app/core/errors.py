"""One JSON error envelope for every error, whichever layer raised it."""

from __future__ import annotations

from http import HTTPStatus

import structlog
from flask import Flask, Response, jsonify
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from app.core.logging import current_request_id

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = "5"

# Machine-readable codes; anything unlisted falls back to the HTTP phrase in snake_case.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorInfo
    request_id: str


class APIError(Exception):
    """Raised by services; becomes an error response with this status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def error_response(
    status: int,
    message: str,
    *,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    code = CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    body = {
        "error": {"code": code, "message": message, "details": details or []},
        "request_id": current_request_id(),
    }
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def errors(*statuses: int) -> dict[int, type[ErrorResponse]]:
    """The `responses` entries of a route for the error statuses it can answer."""
    return {status: ErrorResponse for status in statuses}


def validation_error_response(exc: PydanticValidationError) -> Response:
    """flask-openapi3's hook for invalid requests. Submitted values are never echoed back."""
    details = [
        {"field": ".".join(str(part) for part in error["loc"]) or "body", "message": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return error_response(422, "The request is invalid.", details=details)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        return error_response(exc.status, exc.message, details=exc.details, headers=exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.response is not None:  # flask-openapi3 aborts with a finished validation response
            return exc.response
        # Keep protocol headers such as Allow (405) but not werkzeug's HTML content type.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, exc.description or "", headers=headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        if not isinstance(exc, OperationalError) and not exc.connection_invalidated:
            return _unexpected_error(exc)
        # The driver's message can hold host names and SQL: it goes to the log, not the client.
        log.warning("database unavailable", error=str(exc.orig))
        return error_response(
            503, "The database is unavailable, try again shortly.", headers={"Retry-After": RETRY_AFTER_SECONDS}
        )

    @app.errorhandler(Exception)
    def _unexpected_error(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "An unexpected error occurred.")
