"""The application factory: settings -> logging -> extensions -> request hooks -> routes -> errors -> Nacos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask_openapi3 import Info, SecurityScheme
from redis import Redis
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from app import cli
from app.api import blueprints
from app.auth.passwords import Passwords
from app.auth.resources.auth import auth
from app.auth.tokens import jwt_config
from app.config import Settings, load_settings, refuse_unsafe
from app.core.compat.flask_limiter import hook_only_limited_requests
from app.core.errors import ErrorResponse, register_error_handlers, validation_error_response
from app.core.logging import configure_logging, init_request_logging
from app.core.metrics import init_metrics
from app.core.openapi import ServiceOpenAPI, init_docs
from app.core.web import init_cors, init_web
from app.extensions import PASSWORDS, REDIS, SETTINGS, VERSION, db, jwt, limiter, migrate
from app.models.base import render_migration_type
from app.monitoring.resources.metrics import metrics
from app.monitoring.resources.nacos import nacos
from app.nacos import init_nacos
from app.nacos.config_follower import published_settings, start_following
from app.nacos.config_watcher import ConfigStart, start_flask_run_configuration
from app.tracing import init_tracing

__version__ = "0.1.0"
# Found from here, so that `python manage.py init-db` works from any working directory.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(test_config: dict[str, Any] | None = None) -> ServiceOpenAPI:
    """Build the app. `test_config` holds settings that replace the environment's and `.env`."""
    settings, config = _settings(test_config)
    configure_logging(settings)
    refuse_unsafe(settings)
    cli.refuse_production_debugger(settings)

    app = ServiceOpenAPI(
        __name__,
        info=Info(title="Flask API", version=__version__, description="JWT-authenticated user service."),
        security_schemes={"bearerAuth": SecurityScheme(type="http", scheme="bearer", bearerFormat="JWT")},
        validation_error_status=422,
        validation_error_model=ErrorResponse,
        validation_error_callback=validation_error_response,
        doc_prefix="",
        doc_url="/openapi.json",
    )
    app.config.from_mapping(_flask_config(settings))
    app.json.sort_keys = False  # keep fields in the order the schemas declare them
    app.extensions[SETTINGS] = settings
    app.extensions[VERSION] = __version__

    _init_extensions(app, settings)
    init_request_logging(app)
    init_tracing(app, settings, version=__version__)  # after the request id: its log lines get the trace ids
    init_metrics(app)
    init_web(app)
    _register_routes(app)
    register_error_handlers(app)
    init_nacos(app, settings.nacos, version=__version__, config=config)  # last: `flask run` registers the built app
    if test_config is None:
        start_following(app)  # the configuration's later versions
    return app


def _settings(test_config: dict[str, Any] | None) -> tuple[Settings, ConfigStart | None]:
    """The settings to build with, and the configuration from Nacos when this process reads it now.

    A process of an instance whose watcher publishes the configuration from Nacos (a gunicorn
    worker, `python run.py`) starts with it; `flask run` reads it here, before the settings are
    validated, and watches it once it serves.
    """
    if test_config is not None:
        return load_settings(test_config), None
    if (published := published_settings()) is not None:
        return published, None
    local = load_settings()
    cli.refuse_production_debugger(local)  # at once, not after waiting on Nacos (again below, with its settings)
    configure_logging(local)  # what the start says of Nacos goes where the service logs
    config = start_flask_run_configuration(local)
    return (local if config is None else config.settings), config


def _flask_config(settings: Settings) -> dict[str, Any]:
    # Statement parameters (password hashes, emails) stay out of the SQL log and out of the text of
    # database errors, which the error log records.
    engine_options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    database = settings.database
    url = database.DATABASE_URL
    if url.startswith("sqlite"):
        engine_options["connect_args"] = {"timeout": 15}  # wait for a writer instead of "database is locked"
    else:
        engine_options |= {
            "pool_size": database.DATABASE_POOL_SIZE,
            "max_overflow": database.DATABASE_MAX_OVERFLOW,
            "pool_recycle": 1800,  # below MySQL's wait_timeout and most proxies' idle limits
            "connect_args": {"connect_timeout": database.DATABASE_CONNECT_TIMEOUT},
        }
    return {
        "SECRET_KEY": settings.secret("SECRET_KEY"),
        "DEBUG": settings.app.debug,
        "TESTING": settings.app.FLASK_ENV == "testing",
        "MAX_CONTENT_LENGTH": settings.web.MAX_CONTENT_LENGTH,
        # Redis shares the counts between workers and instances; if it goes away, memory keeps
        # limiting (per process) until it is back, and Flask-Limiter logs the switch.
        "RATELIMIT_STORAGE_URI": settings.limits.REDIS_URL or "memory://",
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_STRATEGY": "moving-window",
        "RATELIMIT_KEY_PREFIX": settings.nacos.NACOS_SERVICE_NAME,  # services sharing a Redis keep apart
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        **jwt_config(settings),
    }


def _init_extensions(app: ServiceOpenAPI, settings: Settings) -> None:
    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(MIGRATIONS_DIR),
        render_as_batch=True,
        compare_type=True,
        render_item=render_migration_type,
    )
    jwt.init_app(app)  # issues tokens; app/auth/jwt.py verifies them
    limiter.init_app(app)
    hook_only_limited_requests(app, limiter)
    if settings.web.TRUSTED_PROXY_COUNT:
        proxies = settings.web.TRUSTED_PROXY_COUNT
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    init_cors(app, settings)
    app.extensions[PASSWORDS] = Passwords(settings.auth)
    # Connects on first use; the short timeouts keep a dead Redis from stalling requests.
    redis_url = settings.limits.REDIS_URL
    app.extensions[REDIS] = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2) if redis_url else None


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    # SQLite ignores ON DELETE CASCADE unless asked, per connection.
    if type(dbapi_connection).__module__ == "sqlite3":
        dbapi_connection.execute("PRAGMA foreign_keys=ON")


def _register_routes(app: ServiceOpenAPI) -> None:
    app.register_api(auth)
    for blueprint in blueprints:
        app.register_api(blueprint)
    app.register_api(nacos)
    app.register_api(metrics)
    init_docs(app)
    cli.init_app(app)
