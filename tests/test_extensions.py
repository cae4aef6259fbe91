"""The extensions around a request when the database or Redis goes away at the worst moment."""

import ipaddress
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from limits.storage import RedisStorage
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app import create_app
from app.extensions import db, limiter
from app.models import User
from tests.helpers import PASSWORD, REDIS_URL, settings_for_tests


def test_an_answer_stands_when_the_database_dies_after_the_last_query(app, database_url):
    # An app of its own (the shared one has served requests, so it takes no new route); `app` migrated the database.
    own_app = create_app(settings_for_tests(database_url))

    @own_app.get("/last-query-then-gone")
    def last_query_then_gone():
        db.session.scalar(select(User.id).limit(1))
        # The server goes away now: the rollback that ends the request's transaction cannot reach it.
        db.session.connection().connection.dbapi_connection.close()
        return {"answered": True}

    client = own_app.test_client()
    response = client.get("/last-query-then-gone")

    assert response.status_code == 200
    assert response.get_json() == {"answered": True}
    assert client.get("/api/v1/health").status_code == 200  # the next request gets a working connection


@contextmanager
def database_gone_after_commit(app) -> Iterator[None]:
    """Every statement after a commit fails as if the server had crashed right after it."""
    committed = False

    def remember_commit(_session) -> None:
        nonlocal committed
        committed = True

    def fail_after_commit(*_args) -> None:
        if committed:
            raise db.engine.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    with app.app_context():
        engine = db.engine
    event.listen(Session, "after_commit", remember_commit)
    event.listen(engine, "before_cursor_execute", fail_after_commit)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fail_after_commit)
        event.remove(Session, "after_commit", remember_commit)


def test_a_committed_registration_is_acknowledged_without_reading_it_back(app, client):
    account = {"username": "committed", "email": "committed@example.com", "password": PASSWORD}

    with database_gone_after_commit(app):
        response = client.post("/auth/register", json=account)

    assert response.status_code == 201
    body = response.get_json()
    assert (body["username"], body["email"]) == ("committed", "committed@example.com")
    assert isinstance(body["id"], int) and body["created_at"]


def test_a_request_caught_using_redis_as_another_thread_finds_it_gone_still_gets_its_answer(
    app, database_url, monkeypatch
):
    limited_app = create_app(
        settings_for_tests(database_url, REDIS_URL=REDIS_URL, RATE_LIMIT_ENABLED=True, TRUSTED_PROXY_COUNT=1)
    )

    def gone(*_args, **_kwargs):
        # The moment Redis dies: another thread of the worker met the failure first and switched
        # the limiter to memory, while this request was still talking to Redis.
        monkeypatch.setattr(limiter, "_storage_dead", True)
        raise redis.ConnectionError("Error 111 connecting to Redis. Connection refused.")

    # Registering checks its limit (a Redis write), then reads the limit's window for the headers.
    monkeypatch.setattr(RedisStorage, "get_moving_window", gone)
    account = {"username": "midcall", "email": "midcall@example.com", "password": PASSWORD}
    client_address = {"X-Forwarded-For": str(ipaddress.IPv6Address(uuid.uuid4().int))}  # no counts from other runs
    response = limited_app.test_client().post("/auth/register", json=account, headers=client_address)

    assert response.status_code == 201
