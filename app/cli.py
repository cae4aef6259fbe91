"""`flask init-db` / `flask create-admin`, also reachable as `python manage.py ...`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_migrate import upgrade
from pydantic import TypeAdapter, ValidationError

from app.auth.schemas import Email, Username
from app.errors import APIError
from app.models import Role
from app.services import users as user_service

ADMIN_MIN_PASSWORD_LENGTH = 12


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


@click.command("init-db")
@with_appcontext
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
