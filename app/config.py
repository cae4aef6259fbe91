"""Settings: read once from the environment and `.env`, validated, refused when unsafe."""

from __future__ import annotations

import os
import re
import secrets
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

import structlog
from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy import create_engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

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
_HOST_PORT = re.compile(r"^(?:https?://)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})/?$")

CommaList = Annotated[list[str], NoDecode]

log = structlog.get_logger(__name__)


class ConfigError(SystemExit):
    """A setting is unusable.

    A SystemExit, so that wherever it escapes (run.py, flask run, manage.py) Python prints
    the one line and exits with status 1 instead of a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"Configuration error: {message}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    FLASK_ENV: Literal["development", "production", "testing"] = "development"
    DEBUG: bool | None = None  # None: on in development only
    SECRET_KEY: SecretStr | None = None
    JWT_SECRET_KEY: SecretStr | None = None
    JWT_ACCESS_TOKEN_MINUTES: int = Field(15, ge=1, le=15)
    JWT_REFRESH_TOKEN_DAYS: int = Field(7, ge=1, le=30)

    DATABASE_URL: str = "sqlite:///app.db"
    DATABASE_POOL_SIZE: int = Field(5, ge=1, le=100)
    DATABASE_MAX_OVERFLOW: int = Field(10, ge=0, le=100)
    DATABASE_CONNECT_TIMEOUT: int = Field(5, ge=1, le=60)
    REDIS_URL: str | None = None

    FLASK_DEBUG: bool = False  # Flask's own (`flask run --debug` sets it): serves Werkzeug's debugger console
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["json", "console"] | None = None  # None: console in development, json elsewhere
    LOG_SQL: bool = False

    CORS_ORIGINS: CommaList | None = None  # None: "*" outside production, no cross-origin access in production
    CORS_ALLOW_CREDENTIALS: bool = False
    MAX_CONTENT_LENGTH: int = Field(1024 * 1024, ge=1024, le=100 * 1024 * 1024)

    PASSWORD_REJECT_COMMON: bool | None = None  # None: in production only

    RATE_LIMIT_ENABLED: bool = True
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
    TRUSTED_PROXY_COUNT: int = Field(0, ge=0, le=10)

    ARGON2_TIME_COST: int = Field(3, ge=1, le=20)
    ARGON2_MEMORY_COST: int = Field(64 * 1024, ge=8, le=4 * 1024 * 1024)  # KiB
    ARGON2_PARALLELISM: int = Field(4, ge=1, le=64)

    METRICS_TOKEN: SecretStr | None = None

    HOST: str = "127.0.0.1"
    PORT: int = Field(5000, ge=1, le=65535)
    WEB_CONCURRENCY: int | None = Field(None, ge=1, le=256)  # gunicorn workers; None: 2 x CPUs + 1
    GUNICORN_THREADS: int = Field(4, ge=1, le=256)
    GUNICORN_TIMEOUT: int = Field(30, ge=1, le=3600)
    GUNICORN_GRACEFUL_TIMEOUT: int = Field(30, ge=1, le=3600)
    GUNICORN_KEEPALIVE: int = Field(5, ge=0, le=300)
    GUNICORN_MAX_REQUESTS: int = Field(1000, ge=0)
    GUNICORN_MAX_REQUESTS_JITTER: int = Field(100, ge=0)

    NACOS_ENABLED: bool = True
    NACOS_SERVER_ADDR: CommaList = ["127.0.0.1:8848"]
    NACOS_NAMESPACE: str = Field("public", min_length=1, max_length=128)
    NACOS_GROUP: str = Field("DEFAULT_GROUP", min_length=1, max_length=128, pattern=r"^[^@\s]+$")
    NACOS_SERVICE_NAME: str = Field("flask-api", min_length=1, max_length=255, pattern=r"^[^@\s]+$")
    NACOS_SERVICE_IP: IPv4Address | IPv6Address | None = None
    NACOS_NETWORK_INTERFACE: str | None = None
    NACOS_SERVICE_PORT: int = Field(5000, ge=1, le=65535)
    NACOS_HEARTBEAT_INTERVAL: float = Field(5, gt=0, le=300)
    NACOS_DEREGISTER_TIME: float = Field(10, gt=0, le=86400)
    NACOS_USERNAME: str | None = None
    NACOS_PASSWORD: SecretStr | None = None
    NACOS_CLUSTER_NAME: str = Field("DEFAULT", min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    NACOS_WEIGHT: float = Field(1.0, ge=0, le=10000)
    NACOS_METADATA: dict[str, str] = {}
    NACOS_EPHEMERAL: bool = True
    NACOS_FAIL_FAST: bool = False
    NACOS_API: Literal["auto", "v1", "v3"] = "auto"
    NACOS_TIMEOUT: float = Field(3, gt=0, le=60)
    NACOS_DRAIN_SECONDS: float = Field(5, ge=0, le=300)

    @field_validator(
        "SECRET_KEY",
        "JWT_SECRET_KEY",
        "REDIS_URL",
        "METRICS_TOKEN",
        "NACOS_SERVICE_IP",
        "NACOS_NETWORK_INTERFACE",
        "NACOS_USERNAME",
        "NACOS_PASSWORD",
        "WEB_CONCURRENCY",
        "PASSWORD_REJECT_COMMON",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `NAME=` in .env or `${NAME:-}` in compose means "not set", never "the empty string".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "RATE_LIMIT_LOGIN",
        "RATE_LIMIT_LOGIN_ACCOUNT",
        "RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS",
        "RATE_LIMIT_CURRENT_PASSWORD",
        "RATE_LIMIT_REGISTER",
        "RATE_LIMIT_REFRESH",
        "RATE_LIMIT_NACOS_LOOKUP",
    )
    @classmethod
    def _limits_parse(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '10 per minute'") from None
        return value

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        for origin in value or ():
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin such as https://app.example.com or https://*.example.com"
                )
        return value

    @field_validator("NACOS_SERVER_ADDR", mode="before")
    @classmethod
    def _split_addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [address.strip() for address in value.split(",") if address.strip()]
        if not value:
            raise ValueError("at least one host:port is required")
        for address in value:
            match = _HOST_PORT.match(address)
            if not match or not 1 <= int(match["port"]) <= 65535:
                raise ValueError(f"{address!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _nacos_consistent(self) -> Settings:
        if self.NACOS_DEREGISTER_TIME <= self.NACOS_HEARTBEAT_INTERVAL:
            raise ValueError("NACOS_DEREGISTER_TIME must be longer than NACOS_HEARTBEAT_INTERVAL")
        if bool(self.NACOS_USERNAME) != bool(self.NACOS_PASSWORD):
            raise ValueError("NACOS_USERNAME and NACOS_PASSWORD go together")
        return self

    @field_validator("DATABASE_URL")
    @classmethod
    def _use_bundled_drivers(cls, url: str) -> str:
        url = normalise_database_url(url)
        _check_database_url(url)
        return url

    @property
    def debug(self) -> bool:
        return self.FLASK_ENV == "development" if self.DEBUG is None else self.DEBUG

    @property
    def cors_origins(self) -> list[str]:
        if self.CORS_ORIGINS is not None:
            return self.CORS_ORIGINS
        return [] if self.FLASK_ENV == "production" else ["*"]

    @property
    def reject_common_passwords(self) -> bool:
        if self.PASSWORD_REJECT_COMMON is None:
            return self.FLASK_ENV == "production"
        return self.PASSWORD_REJECT_COMMON

    @property
    def log_format(self) -> str:
        return self.LOG_FORMAT or ("console" if self.FLASK_ENV == "development" else "json")

    @property
    def access_token_expires(self) -> timedelta:
        return timedelta(minutes=self.JWT_ACCESS_TOKEN_MINUTES)

    @property
    def refresh_token_expires(self) -> timedelta:
        return timedelta(days=self.JWT_REFRESH_TOKEN_DAYS)

    def secret(self, name: Literal["SECRET_KEY", "JWT_SECRET_KEY"]) -> str:
        """The configured secret or, outside production (refuse_unsafe), a random one for this process."""
        value: SecretStr | None = getattr(self, name)
        if value is not None and value.get_secret_value():
            return value.get_secret_value()
        if name not in _EPHEMERAL_SECRETS:
            log.warning(
                "using a random key for this process: tokens end at restart and are not shared by workers",
                setting=name,
            )
            _EPHEMERAL_SECRETS[name] = secrets.token_urlsafe(48)
        return _EPHEMERAL_SECRETS[name]

    def security_problems(self, *, workers: int = 1) -> list[str]:
        """What makes these settings unsafe to expose; fatal in production, warnings elsewhere.

        `workers`: how many processes serve (gunicorn's master knows, once its command line is read).
        """
        problems = [
            f"{name} {problem}"
            for name in ("SECRET_KEY", "JWT_SECRET_KEY")
            if (problem := _secret_problem(getattr(self, name)))
        ]
        if problems:
            problems[-1] += f" ({GENERATE_SECRET_HINT})"
        elif self.SECRET_KEY == self.JWT_SECRET_KEY:
            problems.append(f"SECRET_KEY and JWT_SECRET_KEY must differ ({GENERATE_SECRET_HINT})")
        if "*" in self.cors_origins and self.CORS_ALLOW_CREDENTIALS:
            problems.append("CORS_ORIGINS=* together with CORS_ALLOW_CREDENTIALS=true lets any site act as the user")
        if self.DEBUG and self.FLASK_ENV == "production":
            problems.append("DEBUG must be off in production")
        if self.FLASK_DEBUG and self.FLASK_ENV == "production":
            problems.append("FLASK_DEBUG (flask run --debug) must be off in production: it serves a Python console")
        if self.FLASK_ENV != "testing" and (
            self.ARGON2_MEMORY_COST < ARGON2_MIN_MEMORY_KIB or self.ARGON2_TIME_COST < ARGON2_MIN_TIME_COST
        ):
            problems.append(
                f"ARGON2_MEMORY_COST/ARGON2_TIME_COST are below OWASP's minimum "
                f"(m={ARGON2_MIN_MEMORY_KIB} KiB, t={ARGON2_MIN_TIME_COST})"
            )
        if workers > 1 and self.RATE_LIMIT_ENABLED and not self.REDIS_URL and not self.RATE_LIMIT_ALLOW_MEMORY:
            problems.append(
                f"REDIS_URL is not set, so each of the {workers} workers counts the rate limits on its own "
                f"({workers} times each limit): set REDIS_URL, or RATE_LIMIT_ALLOW_MEMORY=true to accept that"
            )
        return problems


_EPHEMERAL_SECRETS: dict[str, str] = {}


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
    """Stop a production start on any security problem; elsewhere warn once per process."""
    problems = settings.security_problems(workers=workers)
    if problems and settings.FLASK_ENV == "production":
        raise ConfigError("; ".join(problems))
    for problem in problems:
        if problem not in _warned:
            _warned.add(problem)
            log.warning("insecure setting, refused in production", problem=problem)


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment and `.env` (or ENV_FILE); `overrides` (tests) win and replace the file."""
    try:
        if overrides is None:
            return Settings(_env_file=os.environ.get(ENV_FILE_VARIABLE, ".env") or None)
        return Settings(_env_file=None, **overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}" if name else message) from None
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
