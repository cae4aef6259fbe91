"""Fixtures: one app per test session on the database named by TEST_DATABASE_URL (SQLite by default).

The schema is built by the real migrations, so every run also checks them on that database;
every test starts from empty tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import delete

from app import create_app
from app.config import load_settings
from app.core.logging import configure_logging
from app.extensions import db
from app.models import Role
from app.nacos.process import start_registrar
from app.nacos.registrar import Registrar
from app.nacos.state import RUNTIME_DIR_VARIABLE
from app.services import users as user_service
from tests.helpers import PASSWORD, bearer, login, settings_for_tests
from tests.nacos.fake_nacos import FakeNacos
from tests.nacos.helpers import wait_for
from tests.processes import hermetic_environment


def pytest_configure(config: pytest.Config) -> None:
    """No test reads the developer's `.env` or the caller's settings: the test process forgets them here,
    before any test is collected, and the servers tests start inherit nothing else (service_environment)."""
    clean = hermetic_environment(os.environ)
    os.environ.clear()
    os.environ.update(clean)


@pytest.fixture(scope="session", autouse=True)
def _logging_as_in_the_app() -> None:
    """Tests that build no app (the Nacos ones) still log through stdlib, where caplog sees it."""
    configure_logging(load_settings(settings_for_tests("sqlite://")))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # A file, not :memory:, so that threads in the concurrency tests share one database.
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    app = create_app(settings_for_tests(database_url))
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()


@pytest.fixture
def app_with(app: Flask, database_url: str) -> Iterator[Callable[..., Flask]]:
    """app_with(**settings) -> another app on the test database, with those settings over the tests'
    (its tables are the `app` fixture's, emptied after the test)."""
    made: list[Flask] = []

    def make(**settings: Any) -> Flask:
        made.append(create_app(settings_for_tests(database_url, **settings)))
        return made[-1]

    yield make
    for extra in made:
        with extra.app_context():
            db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(app: Flask):
    """make_user("alice", role=Role.ADMIN) -> the user's id; the password is PASSWORD unless given."""

    def make(username: str, *, role: Role = Role.USER, password: str = PASSWORD, is_active: bool = True) -> int:
        with app.app_context():
            user = user_service.create_user(
                username=username, email=f"{username}@example.com", password=password, role=role
            )
            if not is_active:
                user.is_active = False
                db.session.commit()
            return user.id

    return make


@pytest.fixture
def user_headers(client: FlaskClient, make_user) -> dict[str, str]:
    make_user("alice")
    return bearer(login(client, "alice")["access_token"])


@pytest.fixture
def admin_headers(client: FlaskClient, admin_headers_for) -> dict[str, str]:
    return admin_headers_for(client)


@pytest.fixture
def admin_headers_for(make_user):
    """admin_headers_for(client) -> headers of an admin logged in through that client (for extra apps)."""
    make_user("root", role=Role.ADMIN)
    return lambda client: bearer(login(client, "root")["access_token"])


@pytest.fixture(autouse=True)
def _registrar_announcements_are_undone(monkeypatch) -> None:
    # Set, then deleted: monkeypatch records the variable's absence and restores it after the test,
    # whatever start_registrar() announced meanwhile.
    monkeypatch.setenv(RUNTIME_DIR_VARIABLE, "")
    monkeypatch.delenv(RUNTIME_DIR_VARIABLE)


@pytest.fixture
def nacos() -> Iterator[FakeNacos]:
    fake = FakeNacos().start()
    yield fake
    fake.stop()


@pytest.fixture
def nacos_settings(nacos: FakeNacos, database_url: str) -> dict[str, Any]:
    """Test settings with Nacos on, against the fake."""
    return settings_for_tests(
        database_url,
        NACOS_ENABLED=True,
        NACOS_SERVER_ADDR=nacos.address,
        NACOS_HEARTBEAT_INTERVAL=0.3,
        NACOS_DEREGISTER_TIME=5,
    )


@pytest.fixture
def registrar(nacos: FakeNacos, nacos_settings: dict[str, Any]) -> Iterator[Registrar | None]:
    """The registrar, as gunicorn's master or the dev server runs it, announced to this process."""
    running = start_registrar(load_settings(nacos_settings).nacos, serving_port=5000, version="test")
    wait_for(lambda: nacos.hosts("flask-api"))
    yield running
    running.stop()


@pytest.fixture
def nacos_client(app: Flask, nacos_settings: dict[str, Any]) -> FlaskClient:
    """A client of an app with Nacos on (its tables are the `app` fixture's)."""
    return create_app(nacos_settings).test_client()
