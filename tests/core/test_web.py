"""Security headers and CORS."""

import pytest
from flask import session

from app import create_app
from tests.helpers import settings_for_tests


def test_json_responses_carry_the_security_headers(client):
    headers = client.get("/api/v1/health/live").headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_auth_responses_are_not_stored(client):
    assert client.post("/auth/login", json={}).headers["Cache-Control"] == "no-store"


def test_no_cookie_session_is_read_or_written(app, client):
    """Bearer tokens only: a session cookie is ignored, none is set, and code cannot start one."""
    client.set_cookie("session", "eyJ1c2VyIjoxfQ.forged")
    assert "Set-Cookie" not in client.get("/api/v1/health/live").headers
    with app.test_request_context(headers={"Cookie": "session=eyJ1c2VyIjoxfQ.forged"}):
        assert not session
        with pytest.raises(RuntimeError):
            session["user_id"] = 1


def test_docs_pages_may_run_their_own_scripts_only(client):
    csp = client.get("/docs").headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "http" not in csp


def test_cors_default_allows_any_origin_without_credentials(client):
    response = client.options(
        "/api/v1/users", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.fixture
def listed_origins_client(database_url):
    app = create_app(
        settings_for_tests(
            database_url, CORS_ORIGINS="https://a.example, https://b.example", CORS_ALLOW_CREDENTIALS=True
        )
    )
    return app.test_client()


def test_cors_listed_origins_with_credentials(listed_origins_client):
    allowed = listed_origins_client.get("/api/v1/health/live", headers={"Origin": "https://b.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]

    refused = listed_origins_client.get("/api/v1/health/live", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers


@pytest.fixture
def wildcard_subdomain_client(database_url):
    app = create_app(
        settings_for_tests(
            database_url, CORS_ORIGINS="https://*.example.com, http://[::1]:3000", CORS_ALLOW_CREDENTIALS=True
        )
    )
    return app.test_client()


def allowed_origin(client, origin: str) -> str | None:
    return client.get("/api/v1/health/live", headers={"Origin": origin}).headers.get("Access-Control-Allow-Origin")


@pytest.mark.parametrize("origin", ["https://app.example.com", "https://APP-2.Example.com", "http://[::1]:3000"])
def test_cors_patterns_let_in_the_origins_they_name(wildcard_subdomain_client, origin):
    assert allowed_origin(wildcard_subdomain_client, origin) == origin


@pytest.mark.parametrize(
    "origin",
    [
        "https://xexample.com.evil.net",
        "https://app.example.com.evil.net",
        "https://evil.net/https://app.example.com",
        "https://a.b.example.com",  # `*` is one label, not several
        "https://.example.com",
        "https://example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.comx",
        "http://[::1]:30000",
    ],
)
def test_cors_patterns_match_whole_origins_only(wildcard_subdomain_client, origin):
    assert allowed_origin(wildcard_subdomain_client, origin) is None


def test_cors_in_production_without_origins_grants_no_cross_origin_access(database_url):
    secrets = {"SECRET_KEY": "dEv-Q8x1+production+only-Zk4-wR7n", "JWT_SECRET_KEY": "J2m!production-signing-Lp5v-Hs9q"}
    app = create_app(
        settings_for_tests(
            database_url, FLASK_ENV="production", ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=19456, **secrets
        )
    )
    client = app.test_client()
    assert allowed_origin(client, "https://app.example") is None
    preflight = client.options(
        "/api/v1/users", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
