"""structlog over stdlib logging: one format for our logs and for werkzeug's, gunicorn's, SQLAlchemy's."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime

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

ACCESS_LOGGER = "app.access"
_access_logger = logging.getLogger(ACCESS_LOGGER)


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
        json_renderer = structlog.processors.JSONRenderer()
        render = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.EventRenamer("message"),
            _seed_field_order,
            json_renderer,
        ]
        render_finished = lambda event: json_renderer(None, "info", event)  # noqa: E731
    else:
        # rich is a development extra; without it the plain traceback (which has no locals either).
        tracebacks = structlog.dev.plain_traceback
        if structlog.dev.rich is not None:
            colour_system = "truecolor" if colours else None
            tracebacks = structlog.dev.RichTracebackFormatter(show_locals=False, color_system=colour_system)
        console_renderer = structlog.dev.ConsoleRenderer(colors=colours, exception_formatter=tracebacks)
        render = [console_renderer]
        render_finished = lambda event: console_renderer(  # noqa: E731
            None, "info", {("event" if key == "message" else key): value for key, value in event.items()}
        )
    return _Formatter(
        render_finished,
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_SHARED_PROCESSORS],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
    )


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, which also writes a finished event (the access line) as it is: that
    line is the one written for every request, and running it through structlog's processors and
    the formatter's chain would cost as much as the rest of the request's hooks."""

    def __init__(self, render_finished, **options) -> None:
        super().__init__(**options)
        self.render_finished = render_finished

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "finished_event", False):  # its msg is the whole event
            return self.render_finished(record.msg)
        return super().format(record)


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
        if _access_logger.isEnabledFor(logging.INFO):
            _log_access(response)
        return response

    @app.teardown_request
    def _end_request(_exc: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()


def _log_access(response: Response) -> None:
    """The access line, made as a finished event: the fields and order every other line gets from
    the processors (timestamp, level, logger, message, the event's fields, the bound context),
    redacted the same way."""
    started = g.get("request_started")
    event = {
        "timestamp": datetime.now(tz=UTC).isoformat().replace("+00:00", "Z"),
        "level": "info",
        "logger": ACCESS_LOGGER,
        "message": "request",
        "method": request.method,
        "path": request.path,  # never the query string: it may carry tokens
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
    }
    for name, value in structlog.contextvars.get_contextvars().items():
        event.setdefault(name, value)
    redact_secrets(None, None, event)
    record = _access_logger.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0, event, None, None)
    record.finished_event = True
    _access_logger.handle(record)


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
