"""structlog over stdlib logging: one format for our logs and for werkzeug's, gunicorn's, SQLAlchemy's."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid

import structlog
from flask import Flask, Response, g, request
from structlog.tracebacks import ExceptionDictTransformer

from app.config import Settings
from app.core.compat import stdlib_logging
from app.core.compat import werkzeug as werkzeug_compat

REDACTED = "[REDACTED]"
_SECRET_KEY_PARTS = ("password", "token", "secret", "authorization")
_SECRET_KEY = re.compile("|".join(_SECRET_KEY_PARTS), re.IGNORECASE)  # one search per field, not four
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The end of werkzeug's own per-request line ('<address> - - [<date>] "%s" %s %s'); ours replaces it.
_WERKZEUG_REQUEST_LINE_END = '"%s" %s %s'

access_log = structlog.get_logger("app.access")


def redact_secrets(_logger, _method, event_dict: dict) -> dict:
    """Last line of defence: a field whose name says it holds a secret is never written."""
    for key in event_dict:
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
    return event_dict


def _seed_field_order(_logger, _method, event_dict: dict) -> dict:
    """The README's line shape: timestamp, level, logger, message, then the event's own fields."""
    head = {key: event_dict.pop(key) for key in ("timestamp", "level", "logger", "message") if key in event_dict}
    return {**head, **event_dict}


class _DropWerkzeugRequestLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.endswith(_WERKZEUG_REQUEST_LINE_END))


class _OurHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each write (test runners swap it), like logging.lastResort.

    Its class also marks the handler we install, so that reconfiguring replaces ours only.
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


_SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    redact_secrets,
]


def build_formatter(log_format: str, *, colours: bool = False) -> structlog.stdlib.ProcessorFormatter:
    """Renders structlog events and plain stdlib records (werkzeug, gunicorn, SQLAlchemy) alike.

    Tracebacks never show local variables: a frame's locals hold the request's password or token.
    `colours`: terminal colour codes in console lines, for a terminal only (a file or a pipe would
    keep them as escape sequences).
    """
    if log_format == "json":
        render = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.EventRenamer("message"),
            _seed_field_order,
            structlog.processors.JSONRenderer(),
        ]
    else:
        # rich is a development extra; without it the plain traceback (which has no locals either).
        tracebacks = structlog.dev.plain_traceback
        if structlog.dev.rich is not None:
            colour_system = "truecolor" if colours else None
            tracebacks = structlog.dev.RichTracebackFormatter(show_locals=False, color_system=colour_system)
        render = [structlog.dev.ConsoleRenderer(colors=colours, exception_formatter=tracebacks)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_SHARED_PROCESSORS],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
    )


def configure_logging(settings: Settings) -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Our formatter writes neither the caller's file and line nor the thread or process, which stdlib
    # logging would otherwise look up for every record (the logging HOWTO's "Optimization" section):
    # about a fifth of what an access line costs.
    stdlib_logging.skip_caller_lookup()
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    colours = sys.stderr.isatty()
    if not colours:
        werkzeug_compat.plain_start_lines()  # Werkzeug colours them whatever the output
    handler = _OurHandler()
    handler.setFormatter(build_formatter(settings.log_format, colours=colours))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.logging.LOG_LEVEL)

    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, _DropWerkzeugRequestLines) for f in werkzeug.filters):
        werkzeug.addFilter(_DropWerkzeugRequestLines())
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if settings.logging.LOG_SQL else logging.WARNING)


def init_request_logging(app: Flask) -> None:
    """Request id in every log line and error, and one access line per request."""

    @app.before_request
    def _start_request() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.request_started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def _log_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = current_request_id()
        started = g.get("request_started")
        access_log.info(
            "request",
            method=request.method,
            path=request.path,  # never the query string: it may carry tokens
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
        )
        return response

    @app.teardown_request
    def _end_request(_exc: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()


def current_request_id() -> str:
    """The id of this request; errors raised before the request hooks ran still get one."""
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex
    return g.request_id


# A fork taken while another thread is writing a log line (gunicorn's master starting a worker while
# its Nacos registrar logs) would leave the child's copy of sys.stderr's buffer locked for ever:
# Python gives the child new logging locks, not a new lock for that buffer, so the new worker would
# hang at its first line until gunicorn kills it. A fork therefore waits for the line being written.
_held_across_fork: list[logging.Handler] = []


def _hold_our_handlers() -> None:
    _held_across_fork[:] = [h for h in logging.getLogger().handlers if isinstance(h, _OurHandler)]
    for handler in _held_across_fork:
        handler.acquire()


def _release_our_handlers() -> None:
    for handler in _held_across_fork:
        handler.release()
    _held_across_fork.clear()


if hasattr(os, "register_at_fork"):  # POSIX; the child's locks are new ones already (logging re-creates them)
    os.register_at_fork(before=_hold_our_handlers, after_in_parent=_release_our_handlers)
