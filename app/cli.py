"""`flask init-db` / `flask create-admin`, also reachable as `python manage.py ...`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import structlog
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask.helpers import get_debug_flag
from flask_migrate import upgrade
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError

from app.config import ConfigError, Settings
from app.core.compat.click import flask_run_context
from app.core.errors import APIError
from app.models import Role
from app.schemas.fields import Email, Username
from app.services import users as user_service

ADMIN_MIN_PASSWORD_LENGTH = 12

log = structlog.get_logger(__name__)


def admin_password_problem(password: str, *, username: str) -> str | None:
    """Why an administrator's password is too weak, or None."""
    if len(password) < ADMIN_MIN_PASSWORD_LENGTH:
        return f"must be at least {ADMIN_MIN_PASSWORD_LENGTH} characters"
    if len(password) > 128:
        return "must be at most 128 characters"
    if len(set(password)) < 6:
        return "must use at least 6 different characters"
    if username.lower() in password.lower():
        return "must not contain the username"
    return None


def _parsed(adapter: TypeAdapter, value: str, name: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint=name) from None


def log_where_to_start(settings: Settings) -> None:
    """The development server's first line: where the documentation is, and how to get an administrator."""
    wildcard = settings.server.HOST in ("0.0.0.0", "::", "")  # noqa: S104 (recognised, to show a reachable address)
    host = "127.0.0.1" if wildcard else settings.server.HOST
    base = f"http://{f'[{host}]' if ':' in host else host}:{settings.server.PORT}"
    log.info(
        f"API documentation at {base}/docs (Swagger UI) and {base}/redoc; "
        "create an administrator with: python manage.py create-admin"
    )


def refuse_production_debugger(settings: Settings) -> None:
    """`flask run --debugger` in production would serve Werkzeug's console: anyone reaching it runs Python.

    (`flask run --debug` sets FLASK_DEBUG, which the settings refuse already.)
    """
    context = flask_run_context()
    if not settings.app.production or context is None or context.command.name != "run":
        return
    debugger = context.params.get("debugger")
    if debugger or (debugger is None and get_debug_flag()):
        raise ConfigError("flask run --debugger must not serve in production: it serves a Python console")


def database_errors_in_one_line(command: Callable[..., None]) -> Callable[..., None]:
    """A database that cannot be reached (down, missing, refusing the login) is one line and exit 1."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except DBAPIError as exc:
            url = current_app.extensions["sqlalchemy"].engines[None].url.render_as_string(hide_password=True)
            reason = " ".join(str(exc.orig).split()) if exc.orig is not None else type(exc).__name__
            raise click.ClickException(f"cannot use the database at DATABASE_URL={url}: {reason}") from None

    return run


@click.command("init-db")
@with_appcontext
@database_errors_in_one_line
def init_db() -> None:
    """Create or upgrade the database schema (safe to run again)."""
    upgrade()
    click.echo("Database is up to date.")


@click.command("create-admin")
@with_appcontext
@click.option("--username", envvar="ADMIN_USERNAME", prompt=True, help="or ADMIN_USERNAME")
@click.option("--email", envvar="ADMIN_EMAIL", prompt=True, help="or ADMIN_EMAIL")
@click.option(
    "--password",
    envvar="ADMIN_PASSWORD",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="or ADMIN_PASSWORD (prompted, hidden, when neither is given)",
)
@database_errors_in_one_line
def create_admin(username: str, email: str, password: str) -> None:
    """Create an administrator account."""
    username = _parsed(TypeAdapter(Username), username, "username")
    email = _parsed(TypeAdapter(Email), email, "email")
    if problem := admin_password_problem(password, username=username):
        raise click.BadParameter(problem, param_hint="password")
    try:
        user = user_service.create_user(username=username, email=email, password=password, role=Role.ADMIN)
    except APIError as exc:
        raise click.ClickException("; ".join(d["message"] for d in exc.details) or exc.message) from None
    click.echo(f"Administrator {user.username} (id {user.id}) created.")


def init_app(app: Flask) -> None:
    app.cli.add_command(init_db)
    app.cli.add_command(create_admin)
