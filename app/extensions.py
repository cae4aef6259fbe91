"""Extension objects, created here and bound to the app in create_app(), and typed accessors for the
app's other shared objects (create_app stores them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:  # types only: the objects are made by create_app, from the layers above
    from redis import Redis

    from app.auth.passwords import Passwords
    from app.config import Settings
    from app.nacos.discovery import Discovery

# Named constraints, so that Alembic can later drop or alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Database(SQLAlchemy):
    """Flask-SQLAlchemy, with a request's end that survives a database gone since its last query."""

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        # Flask runs teardowns last registered first: this one closes the session before
        # Flask-SQLAlchemy's own removes it.
        app.teardown_appcontext(self._close_session)

    def _close_session(self, _exc: BaseException | None) -> None:
        if not self.session.registry.has():
            return  # the request never used the database
        try:
            self.session.close()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The server went away after the request's last query, so the rollback that closing
            # sends could not reach it; nothing was left to roll back. The connection is marked dead
            # now, and closing again only lets go of it. The answer already made stands, instead of
            # becoming a 500 at the very end.
            self.session.close()


# Objects keep their values through a commit: an answer is built from what was just committed,
# without reading it back, so a database that goes away after a commit cannot turn an
# acknowledged write into an error (and the answer costs one query less).
db = Database(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
# The client address is the peer's, or X-Forwarded-For's behind TRUSTED_PROXY_COUNT proxies (ProxyFix).
# When Redis goes away, the first request of a worker to meet the failure switches the limits to
# memory (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED); another request caught mid-call to Redis at that
# moment would fail with it. Swallowed errors let such a request through, logged, uncounted.
limiter = Limiter(key_func=get_remote_address, swallow_errors=True)


def limit_from_setting(setting: str, **options):
    """limiter.limit() for the limit a setting of settings.limits names, both read per request from
    the app's own settings (the limiter object is shared by every app of the process). A decorator,
    or a context manager around a block of a view. The only way limits are set: with no application
    or default limits, the limiter's request hooks run only where one was checked
    (app/core/compat/flask_limiter.py)."""
    limits = lambda: current_settings().limits  # noqa: E731
    return limiter.limit(
        lambda: getattr(limits(), setting), exempt_when=lambda: not limits().RATE_LIMIT_ENABLED, **options
    )


# The current app's shared objects (create_app stores them under these keys).
SETTINGS, VERSION, PASSWORDS, REDIS, DISCOVERY = "settings", "version", "passwords", "redis", "discovery"


def current_settings() -> Settings:
    return current_app.extensions[SETTINGS]


def current_version() -> str:
    return current_app.extensions[VERSION]


def current_passwords() -> Passwords:
    return current_app.extensions[PASSWORDS]


def current_redis() -> Redis | None:
    """The Redis client, when REDIS_URL is set."""
    return current_app.extensions[REDIS]


def current_discovery() -> Discovery | None:
    """Other services' instances, when Nacos is enabled."""
    return current_app.extensions[DISCOVERY]
