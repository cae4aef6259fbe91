"""/api/v1/health (readiness) and /api/v1/health/live."""

import pytest

from app import create_app
from tests.helpers import assert_error, settings_for_tests


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
    assert unreachable_db_client.get("/api/v1/health/live").status_code == 200


def test_every_database_route_answers_503_when_it_is_down(unreachable_db_client):
    response = unreachable_db_client.post("/auth/login", json={"username": "a", "password": "b"})
    assert_error(response, 503, "service_unavailable")


@pytest.fixture
def unreachable_db_client():
    # Port 9 (discard) on loopback: nothing listens, so connecting fails at once.
    app = create_app(settings_for_tests("postgresql://nobody@127.0.0.1:9/none", DATABASE_CONNECT_TIMEOUT=2))
    return app.test_client()
