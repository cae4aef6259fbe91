"""Settings: read once from the environment and `.env`, validated, refused when unsafe.

The environment's names are flat (NACOS_GROUP, LOG_LEVEL, ...); the code reads them by concern, one
group each, and a package takes only its own group:

    settings.app       FLASK_ENV, DEBUG, FLASK_DEBUG
    settings.database  DATABASE_URL, DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW, DATABASE_CONNECT_TIMEOUT
    settings.logging   LOG_LEVEL, LOG_FORMAT, LOG_SQL
    settings.web       CORS_ORIGINS, CORS_ALLOW_CREDENTIALS, MAX_CONTENT_LENGTH, TRUSTED_PROXY_COUNT
    settings.auth      SECRET_KEY, JWT_SECRET_KEY, JWT_*, ARGON2_*, PASSWORD_REJECT_COMMON
    settings.limits    RATE_LIMIT_*, REDIS_URL (where the counts live)
    settings.metrics   METRICS_TOKEN
    settings.server    HOST, PORT, WEB_CONCURRENCY, GUNICORN_*
    settings.nacos     NACOS_* (app/nacos/settings.py: the Nacos package's own)

Each group is a SettingsGroup (app/settings_group.py) whose fields are named as the variables, so an
error names the variable (`Configuration error: NACOS_GROUP: ...`). What needs more than one group
(the defaults that depend on FLASK_ENV, the signing keys, security_problems) is on Settings.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal, get_args

import structlog
from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsError
from sqlalchemy import create_engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from app.nacos.settings import NacosSettings
from app.settings_group import CommaList, ConfigError, SettingsGroup, in_environment, nacos_values

# Values people copy from examples; the first two are the seed's own.
PLACEHOLDER_SECRETS = frozenset(
    {
        "your-secret-key-here",
        "jwt-secret-key",
        "your-jwt-secret-key-here",
        "change-me",
        "changeme",
        "secret",
        "secret-key",
        "dev",
        "development",
    }
)
MIN_SECRET_BYTES = 32
# A random key of 32+ characters has far more; "aaaa…" or a hex digit pattern has fewer.
MIN_SECRET_DISTINCT_CHARACTERS = 10
GENERATE_SECRET_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105 (advice, not a secret)
# OWASP Password Storage Cheat Sheet: argon2id with at least m=19 MiB, t=2, p=1.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_TIME_COST = 2

# Names the settings file read besides the environment; empty reads none (what the test suite runs with).
ENV_FILE_VARIABLE = "ENV_FILE"


# scheme://host[:port], nothing after; `*` stands for part of one DNS label.
_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9.*\[\]:-]+$")

log = structlog.get_logger(__name__)


class AppSettings(SettingsGroup):
    FLASK_ENV: Literal["development", "production", "testing"] = "development"
    DEBUG: bool | None = None  # None: on in development only
    FLASK_DEBUG: bool = False  # Flask's own (`flask run --debug` sets it): serves Werkzeug's debugger console

    @property
    def debug(self) -> bool:
        return self.FLASK_ENV == "development" if self.DEBUG is None else self.DEBUG

    @property
    def production(self) -> bool:
        return self.FLASK_ENV == "production"


class DatabaseSettings(SettingsGroup):
    DATABASE_URL: str = "sqlite:///app.db"
    DATABASE_POOL_SIZE: int = Field(5, ge=1, le=100)
    DATABASE_MAX_OVERFLOW: int = Field(10, ge=0, le=100)
    DATABASE_CONNECT_TIMEOUT: int = Field(5, ge=1, le=60)

    @field_validator("DATABASE_URL")
    @classmethod
    def _use_bundled_drivers(cls, url: str) -> str:
        url = normalise_database_url(url)
        _check_database_url(url)
        return url


class LoggingSettings(SettingsGroup):
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["json", "console"] | None = None  # None: console in development, json elsewhere
    LOG_SQL: bool = False

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


class WebSettings(SettingsGroup):
    CORS_ORIGINS: CommaList | None = None  # None: "*" outside production, no cross-origin access in production
    CORS_ALLOW_CREDENTIALS: bool = False
    MAX_CONTENT_LENGTH: int = Field(1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    TRUSTED_PROXY_COUNT: int = Field(0, ge=0, le=10)

    @field_validator("CORS_ORIGINS")
    @classmethod
    def _origins(cls, origins: list[str] | None) -> list[str] | None:
        if origins is None:
            return None
        origins = [origin.rstrip("/") for origin in origins]
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin such as https://app.example.com or https://*.example.com"
                )
        return origins


class AuthSettings(SettingsGroup):
    SECRET_KEY: SecretStr | None = None
    JWT_SECRET_KEY: SecretStr | None = None
    JWT_ACCESS_TOKEN_MINUTES: int = Field(15, ge=1, le=15)
    JWT_REFRESH_TOKEN_DAYS: int = Field(7, ge=1, le=30)

    ARGON2_TIME_COST: int = Field(3, ge=1, le=20)
    ARGON2_MEMORY_COST: int = Field(64 * 1024, ge=8, le=4 * 1024 * 1024)  # KiB
    ARGON2_PARALLELISM: int = Field(4, ge=1, le=64)

    PASSWORD_REJECT_COMMON: bool | None = None  # None: in production only

    @property
    def access_token_expires(self) -> timedelta:
        return timedelta(minutes=self.JWT_ACCESS_TOKEN_MINUTES)

    @property
    def refresh_token_expires(self) -> timedelta:
        return timedelta(days=self.JWT_REFRESH_TOKEN_DAYS)


# The settings holding a limit (a `limits` string such as "10 per minute"); read per request.
RATE_LIMIT_SETTINGS = (
    "RATE_LIMIT_LOGIN",
    "RATE_LIMIT_LOGIN_ACCOUNT",
    "RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS",
    "RATE_LIMIT_CURRENT_PASSWORD",
    "RATE_LIMIT_REGISTER",
    "RATE_LIMIT_REFRESH",
    "RATE_LIMIT_NACOS_LOOKUP",
)


class LimitSettings(SettingsGroup):
    RATE_LIMIT_ENABLED: bool = True
    # Where the counts live: Redis shares them between workers and instances (and readiness checks it).
    REDIS_URL: str | None = None
    # Without REDIS_URL each gunicorn worker counts on its own (N workers let N times the limit
    # through): production with several workers needs Redis, or this set to say that is accepted.
    RATE_LIMIT_ALLOW_MEMORY: bool = False
    RATE_LIMIT_LOGIN: str = "10 per minute"  # per client address
    # Password checks per account from addresses that never logged in to it (app/auth/guesses.py);
    # ASVS V2.2.1 allows no more than 100 failed ones an hour.
    RATE_LIMIT_LOGIN_ACCOUNT: str = "100 per hour"
    RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS: str = "5 per minute;20 per hour"  # failed checks per account and address
    # Per user: account changes that check the current password.
    RATE_LIMIT_CURRENT_PASSWORD: str = "10 per minute"  # noqa: S105 (a limit, not a password)
    RATE_LIMIT_REGISTER: str = "20 per minute"
    RATE_LIMIT_REFRESH: str = "30 per minute"
    RATE_LIMIT_NACOS_LOOKUP: str = "30 per minute"  # per client address, /monitoring/nacos/service/<name>/instances

    @field_validator(*RATE_LIMIT_SETTINGS)
    @classmethod
    def _limits_parse(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '10 per minute'") from None
        return value


class MetricsSettings(SettingsGroup):
    METRICS_TOKEN: SecretStr | None = None


class ServerSettings(SettingsGroup):
    HOST: str = "127.0.0.1"
    PORT: int = Field(5000, ge=1, le=65535)
    WEB_CONCURRENCY: int | None = Field(None, ge=1, le=256)  # gunicorn workers; None: 2 x CPUs + 1
    GUNICORN_THREADS: int = Field(4, ge=1, le=256)
    GUNICORN_TIMEOUT: int = Field(30, ge=1, le=3600)
    GUNICORN_GRACEFUL_TIMEOUT: int = Field(30, ge=1, le=3600)
    GUNICORN_KEEPALIVE: int = Field(5, ge=0, le=300)
    # A worker replaced every 10,000 requests: a slow leak stays bounded, and a busy worker is
    # replaced every few seconds at most rather than every second (README, "Choices worth knowing").
    GUNICORN_MAX_REQUESTS: int = Field(10_000, ge=0)
    GUNICORN_MAX_REQUESTS_JITTER: int = Field(1000, ge=0)


SigningKey = Literal["SECRET_KEY", "JWT_SECRET_KEY"]
SIGNING_KEYS: tuple[SigningKey, ...] = get_args(SigningKey)


class Settings(BaseModel):
    """Every group, and what needs more than one of them."""

    model_config = ConfigDict(frozen=True)

    app: AppSettings
    database: DatabaseSettings
    logging: LoggingSettings
    web: WebSettings
    auth: AuthSettings
    limits: LimitSettings
    metrics: MetricsSettings
    server: ServerSettings
    nacos: NacosSettings

    # The keys in use: the configured ones and, outside production, random ones for the unset
    # (production refuses an unset key at the start: refuse_unsafe).
    _signing_keys: dict[str, str] = PrivateAttr()
    _random_keys: tuple[SigningKey, ...] = PrivateAttr()

    def model_post_init(self, _context: Any) -> None:
        configured = {name: getattr(self.auth, name) for name in SIGNING_KEYS}
        keys = {name: key.get_secret_value() for name, key in configured.items() if key and key.get_secret_value()}
        self._random_keys = () if self.app.production else tuple(name for name in SIGNING_KEYS if name not in keys)
        self._signing_keys = {**keys, **{name: _random_key(name) for name in self._random_keys}}

    @property
    def random_keys(self) -> tuple[SigningKey, ...]:
        """The signing keys made up for this process: refuse_unsafe says so."""
        return self._random_keys

    def secret(self, name: SigningKey) -> str:
        """The configured secret or, outside production, the process's random one."""
        if name not in self._signing_keys:
            raise ConfigError(f"{name} is not set")
        return self._signing_keys[name]

    @property
    def cors_origins(self) -> list[str]:
        if self.web.CORS_ORIGINS is not None:
            return self.web.CORS_ORIGINS
        return [] if self.app.production else ["*"]

    @property
    def reject_common_passwords(self) -> bool:
        if self.auth.PASSWORD_REJECT_COMMON is None:
            return self.app.production
        return self.auth.PASSWORD_REJECT_COMMON

    @property
    def log_format(self) -> str:
        return self.logging.LOG_FORMAT or ("console" if self.app.FLASK_ENV == "development" else "json")

    def security_problems(self, *, workers: int = 1) -> list[str]:
        """What makes these settings unsafe to expose; fatal in production, warnings elsewhere.

        `workers`: how many processes serve (gunicorn's master knows, once its command line is read).
        """
        app, auth, limits = self.app, self.auth, self.limits
        problems = [f"{name} {problem}" for name in SIGNING_KEYS if (problem := _secret_problem(getattr(auth, name)))]
        if problems:
            problems[-1] += f" ({GENERATE_SECRET_HINT})"
        elif auth.SECRET_KEY == auth.JWT_SECRET_KEY:
            problems.append(f"SECRET_KEY and JWT_SECRET_KEY must differ ({GENERATE_SECRET_HINT})")
        if "*" in self.cors_origins and self.web.CORS_ALLOW_CREDENTIALS:
            problems.append("CORS_ORIGINS=* together with CORS_ALLOW_CREDENTIALS=true lets any site act as the user")
        if app.DEBUG and app.production:
            problems.append("DEBUG must be off in production")
        if app.FLASK_DEBUG and app.production:
            problems.append("FLASK_DEBUG (flask run --debug) must be off in production: it serves a Python console")
        if app.FLASK_ENV != "testing" and (
            auth.ARGON2_MEMORY_COST < ARGON2_MIN_MEMORY_KIB or auth.ARGON2_TIME_COST < ARGON2_MIN_TIME_COST
        ):
            problems.append(
                f"ARGON2_MEMORY_COST/ARGON2_TIME_COST are below OWASP's minimum "
                f"(m={ARGON2_MIN_MEMORY_KIB} KiB, t={ARGON2_MIN_TIME_COST})"
            )
        if workers > 1 and limits.RATE_LIMIT_ENABLED and not limits.REDIS_URL and not limits.RATE_LIMIT_ALLOW_MEMORY:
            problems.append(
                f"REDIS_URL is not set, so each of the {workers} workers counts the rate limits on its own "
                f"({workers} times each limit): set REDIS_URL, or RATE_LIMIT_ALLOW_MEMORY=true to accept that"
            )
        return problems


# Each group, by its name in Settings.
GROUPS: dict[str, type[SettingsGroup]] = {name: field.annotation for name, field in Settings.model_fields.items()}
# Every environment variable the settings read.
SETTING_NAMES: frozenset[str] = frozenset(name for group in GROUPS.values() for name in group.model_fields)


@functools.cache  # one key per name for the whole process: every app, every load of the settings
def _random_key(name: SigningKey) -> str:
    return secrets.token_urlsafe(48)


def _secret_problem(secret: SecretStr | None) -> str | None:
    if secret is None or not secret.get_secret_value():
        return "is not set"
    value = secret.get_secret_value()
    if value.lower() in PLACEHOLDER_SECRETS:
        return "is a well-known placeholder"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    lowered = value.lower()
    if any(len(placeholder) >= 8 and placeholder in lowered for placeholder in PLACEHOLDER_SECRETS):
        return "contains a well-known placeholder"
    if (value + value).find(value, 1) < len(value):  # found again before its own copy: a repeated pattern
        return "is a repeated pattern"
    if len(set(value)) < MIN_SECRET_DISTINCT_CHARACTERS:
        return f"has fewer than {MIN_SECRET_DISTINCT_CHARACTERS} different characters: it is not random"
    return None


def normalise_database_url(url: str) -> str:
    """Map the seed's plain URLs onto the drivers this project ships (psycopg 3, PyMySQL)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError("must look like scheme://...")
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("mysql", "mariadb"):
        # utf8mb4: MySQL's "utf8" cannot store every Unicode character.
        charset = "" if "charset=" in rest else ("&" if "?" in rest else "?") + "charset=utf8mb4"
        return f"mysql+pymysql://{rest}{charset}"
    return url


def _check_database_url(url: str) -> None:
    """A URL SQLAlchemy cannot use is one line now, not a traceback at the first query.

    The messages never repeat the URL: it may hold a password.
    """
    try:
        create_engine(url).dispose()  # parses the URL and loads the driver; connects to nothing
    except NoSuchModuleError:
        scheme = url.partition("://")[0]
        raise ValueError(f"unknown database type {scheme!r}: use sqlite, postgresql or mysql") from None
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        if url.startswith("sqlite"):
            raise ValueError(
                "is not a SQLite URL: a file is sqlite:///app.db (three slashes, relative) or "
                "sqlite:////var/lib/app.db (four, absolute)"
            ) from None
        raise ValueError("is not a database URL such as postgresql://user:password@host:5432/name") from None


_warned: set[str] = set()


def refuse_unsafe(settings: Settings, *, workers: int = 1) -> None:
    """Stop a production start on any security problem; elsewhere warn once per process, and say
    which keys are random."""
    problems = settings.security_problems(workers=workers)
    if problems and settings.app.production:
        raise ConfigError("; ".join(problems))
    for problem in problems:
        if problem not in _warned:
            _warned.add(problem)
            log.warning("insecure setting, refused in production", problem=problem)
    for name in settings.random_keys:
        if name not in _warned:
            _warned.add(name)
            log.warning("using a random key for this process: tokens end at restart", setting=name)


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    nacos: Mapping[str, Any] | None = None,
    nacos_sources: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from the environment and `.env` (or ENV_FILE); `overrides` (tests) win and replace the file.

    `nacos`: the values of the configs read from Nacos, by setting name (app/nacos/config_layer.py),
    below the environment and above `.env`; `nacos_sources` names the config each came from, for
    the error when one is refused. Every group reads the same values and takes its own names; an
    empty override is no override, as an empty variable is no variable.
    """
    env_file = (os.environ.get(ENV_FILE_VARIABLE, ".env") or None) if overrides is None else None
    values = {name: value for name, value in (overrides or {}).items() if value != ""}
    try:
        with nacos_values(nacos):
            return Settings(**{name: group(_env_file=env_file, **values) for name, group in GROUPS.items()})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if nacos and name in nacos and name not in values and not in_environment(name):
            name += f" (from {(nacos_sources or {}).get(name, 'Nacos')})"
        raise ConfigError(f"{name}: {message}" if name else message) from None
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
