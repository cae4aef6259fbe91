"""Request-body limits, no cookie sessions, the security headers every response carries, CORS origins."""

import re

from flask import Flask, Response, request
from flask.sessions import SessionInterface
from flask_cors import CORS
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from app.config import Settings

# JSON cannot run script; the documentation pages are the only HTML we serve.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
NO_STORE_PREFIXES = ("/auth/",)
# What `*` in a CORS_ORIGINS entry stands for: part of one DNS label, never a dot, slash or colon.
_LABEL_PART = "[A-Za-z0-9-]+"


class NoSessions(SessionInterface):
    """Clients authenticate with bearer tokens and nothing keeps state in a cookie: no session is
    read from or written to any request (Flask's own would verify a cookie on each one). Writing to
    flask.session raises."""

    def open_session(self, app: Flask, request) -> None:
        return None  # Flask then hands out its null session

    def save_session(self, app: Flask, session, response: Response) -> None:
        pass


def init_web(app: Flask) -> None:
    app.session_interface = NoSessions()

    @app.before_request
    def _check_body() -> None:
        limit = app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(limit)
        if not request.is_json:
            return
        body = request.get_data(cache=True)
        # A streamed (chunked) body has no length up front: werkzeug stops reading at the limit and
        # quietly drops the rest, so a body that reached the limit is too large if more follows.
        if request.content_length is None and len(body) >= limit and request.environ["wsgi.input"].read(1):
            raise _too_large(limit)
        # Parse JSON up front: flask-openapi3 would read broken JSON as a missing body (422),
        # but the client sent something unreadable, which is a 400. No body is not broken JSON.
        if body:
            try:
                request.get_json()
            except (BadRequest, RecursionError):  # RecursionError: nesting deeper than the parser goes
                raise BadRequest("The request body is not valid JSON.") from None

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        # Each only where the view set none. One pass over the names there: Headers.setdefault
        # looks each one up by raising and catching a KeyError, four times the cost.
        present = {name.lower() for name, _value in headers}
        is_html = response.mimetype == "text/html"
        for name, value in (*SECURITY_HEADERS, ("Content-Security-Policy", DOCS_CSP if is_html else JSON_CSP)):
            if name.lower() not in present:
                headers.add(name, value)
        # Tokens, and whatever an authenticated caller may see (emails, roles), stay out of caches.
        if request.path.startswith(NO_STORE_PREFIXES) or "Authorization" in request.headers:
            headers["Cache-Control"] = "no-store"
        return response


def _too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"The request body is larger than {limit} bytes.")


CORS_HANDLER = "cors_handler"  # app.extensions: flask-cors's after-request function for the origins in force


def init_cors(app: Flask, settings: Settings) -> None:
    """CORS for the settings in force: CORS_ORIGINS can change while the app runs (Nacos).

    flask-cors computes its options once, when it is set up. Each set of origins gets its own
    flask-cors, set up on a scratch app when the origins change (not per request); the app's
    hook hands each response to the one in force.
    """
    update_cors(app, settings)

    @app.after_request
    def _cors(response: Response) -> Response:
        return app.extensions[CORS_HANDLER](response)


def update_cors(app: Flask, settings: Settings) -> None:
    scratch = Flask(app.import_name)
    CORS(
        scratch,
        origins=cors_origin_patterns(settings.cors_origins),
        supports_credentials=settings.web.CORS_ALLOW_CREDENTIALS,
        send_wildcard=not settings.web.CORS_ALLOW_CREDENTIALS,  # a literal "*" rather than the echoed origin
        expose_headers=["X-Request-ID", "Retry-After"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        max_age=600,
    )
    (handler,) = scratch.after_request_funcs[None]
    app.extensions[CORS_HANDLER] = handler


def cors_origin_patterns(origins: list[str]) -> list[str | re.Pattern[str]]:
    """CORS_ORIGINS as flask-cors patterns that match whole origins only.

    flask-cors reads a string holding `*` (or `[`, `?`, ...) as a regular expression matched at the
    start only, with `.` matching any character: `https://*.example.com` would let in
    `https://xexample.com.evil.net`. Each entry becomes an anchored pattern instead, in which `*`
    is part of one DNS label and everything else is literal. A lone `*` stays flask-cors' wildcard.
    """
    return [origin if origin == "*" else _whole_origin(origin) for origin in origins]


def _whole_origin(origin: str) -> re.Pattern[str]:
    literal_parts = (re.escape(part) for part in origin.split("*"))
    return re.compile(_LABEL_PART.join(literal_parts) + r"\Z", re.IGNORECASE)
