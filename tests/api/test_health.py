"""/api/v1/health (readiness) and /api/v1/health/live."""

import pytest

from app import create_app
from app.nacos.registrar import Registrar
from app.nacos.state import RUNTIME_DIR_VARIABLE
from tests.helpers import REDIS_URL, assert_error, settings_for_tests
from tests.nacos.helpers import make_client, make_registration


def test_readiness_reports_database_version_and_uptime(client):
    response = client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["uptime_seconds"] >= 0
    assert body["checks"]["database"]["status"] == "ok"


def test_liveness_checks_nothing_else(client):
    assert client.get("/api/v1/health/live").get_json() == {"status": "ok"}


def test_database_down_is_503_with_retry_after(unreachable_db_client):
    response = unreachable_db_client.get("/api/v1/health")

    body = assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert "127.0.0.1" not in str(body) and "connection" not in body["error"]["message"].lower()
    assert body["error"]["details"] == [{"field": "database", "message": "unreachable"}]
    assert unreachable_db_client.get("/api/v1/health/live").status_code == 200


def test_every_database_route_answers_503_when_it_is_down(unreachable_db_client):
    response = unreachable_db_client.post("/auth/login", json={"username": "a", "password": "b"})
    assert_error(response, 503, "service_unavailable")


@pytest.fixture
def unreachable_db_client():
    # Port 9 (discard) on loopback: nothing listens, so connecting fails at once.
    app = create_app(settings_for_tests("postgresql://nobody@127.0.0.1:9/none", DATABASE_CONNECT_TIMEOUT=2))
    return app.test_client()


def test_readiness_checks_redis_when_configured(database_url):
    client = create_app(settings_for_tests(database_url, REDIS_URL=REDIS_URL)).test_client()
    body = client.get("/api/v1/health").get_json()
    assert body["checks"]["redis"]["status"] == "ok", "Redis must run for this test (TEST_REDIS_URL)"


def test_redis_down_is_503_naming_it(database_url):
    client = create_app(settings_for_tests(database_url, REDIS_URL="redis://127.0.0.1:9/0")).test_client()
    response = client.get("/api/v1/health")
    body = assert_error(response, 503, "service_unavailable")
    assert body["error"]["details"] == [{"field": "redis", "message": "unreachable"}]
    assert response.headers["Retry-After"] == "5"


def test_nacos_is_reported_but_never_fails_readiness(client):
    body = client.get("/api/v1/health").get_json()
    assert body["nacos"] == {"enabled": False, "registered": False}


def test_readiness_is_503_naming_the_drain_once_the_registrar_stops(client, nacos, tmp_path, monkeypatch):
    # What the workers of a server see from SIGTERM on: its registrar leaving Nacos before the process exits.
    registrar = Registrar(
        client=make_client(nacos.address), registration=make_registration(), interval=5, runtime_dir=tmp_path
    )
    registrar.start(fail_fast=True)
    monkeypatch.setenv(RUNTIME_DIR_VARIABLE, str(tmp_path))
    assert client.get("/api/v1/health").status_code == 200

    registrar.stop()

    response = client.get("/api/v1/health")
    body = assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert body["error"]["details"] == [{"field": "instance", "message": "draining"}]
    assert "shutting down" in body["error"]["message"]
    assert client.get("/api/v1/health/live").status_code == 200
