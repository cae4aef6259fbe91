"""Security headers and CORS."""

import re

import pytest
from flask import session

from app import create_app
from app.config import ConfigError
from tests.helpers import assert_error, attempt_login, bearer, production_settings, refresh

JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/health/live"),
        ("get", "/api/v1/users/me"),  # 401
        ("get", "/no/such/path"),  # 404
        ("delete", "/auth/login"),  # 405
        ("post", "/auth/login"),  # 422
        ("get", "/openapi.json"),
    ],
)
def test_json_answers_carry_the_security_headers(client, method, path):
    headers = getattr(client, method)(path).headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == JSON_CSP
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"


@pytest.mark.parametrize("page", ["/docs", "/swagger", "/redoc"])
def test_docs_pages_may_run_their_own_scripts_only(client, page):
    response = client.get(page)
    csp = response.headers["Content-Security-Policy"]
    assert response.headers["Content-Type"].startswith("text/html; charset=utf-8")
    assert csp.startswith("default-src 'none';") and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and not re.search(r"https?:|\*", csp)
    assert response.headers["X-Frame-Options"] == "DENY"


def test_auth_responses_are_not_stored(client):
    assert client.post("/auth/login", json={}).headers["Cache-Control"] == "no-store"


def test_tokens_and_authenticated_answers_are_not_stored(client, make_user):
    make_user("alice")
    logged_in = attempt_login(client, "alice")
    refreshed = refresh(client, logged_in.get_json()["refresh_token"])
    token = refreshed.get_json()["access_token"]
    answers = [
        logged_in,
        refreshed,
        *(client.get(path, headers=bearer(token)) for path in ("/api/v1/users", "/api/v1/users/me")),
    ]
    assert [answer.headers.get("Cache-Control") for answer in answers] == ["no-store"] * 4


def test_no_cookie_session_is_read_or_written(app, client):
    """Bearer tokens only: a session cookie is ignored, none is set, and code cannot start one."""
    client.set_cookie("session", "eyJ1c2VyIjoxfQ.forged")
    assert "Set-Cookie" not in client.get("/api/v1/health/live").headers
    with app.test_request_context(headers={"Cookie": "session=eyJ1c2VyIjoxfQ.forged"}):
        assert not session
        with pytest.raises(RuntimeError):
            session["user_id"] = 1


def test_the_default_wildcard_never_allows_credentials(client):
    simple = client.get("/api/v1/health/live", headers={"Origin": "https://anywhere.example"})
    preflight = client.options(
        "/api/v1/users", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    for response in (simple, preflight):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers


LISTED = "https://app.example"


@pytest.fixture
def listed_origins_client(app_with):
    return app_with(CORS_ORIGINS=f"{LISTED}, https://admin.example", CORS_ALLOW_CREDENTIALS=True).test_client()


def test_cors_listed_origins_with_credentials(listed_origins_client):
    allowed = listed_origins_client.get("/api/v1/health/live", headers={"Origin": "https://admin.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://admin.example"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]

    refused = listed_origins_client.get("/api/v1/health/live", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_a_listed_origin_is_answered_exactly(listed_origins_client):
    preflight = listed_origins_client.options(
        "/api/v1/users",
        headers={
            "Origin": LISTED,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == LISTED
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Origin" in preflight.headers["Vary"]


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "https://app.example.evil.example", "http://app.example"]
)
def test_other_origins_get_no_cors_headers(listed_origins_client, origin):
    simple = listed_origins_client.get("/api/v1/health/live", headers={"Origin": origin})
    preflight = listed_origins_client.options(
        "/api/v1/users", headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"}
    )
    for response in (simple, preflight):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_an_allowed_origin_grants_no_access(listed_origins_client):
    response = listed_origins_client.get("/api/v1/users/me", headers={"Origin": LISTED})
    assert_error(response, 401, "unauthorized")


@pytest.fixture
def wildcard_subdomain_client(app_with):
    return app_with(CORS_ORIGINS="https://*.example.com, http://[::1]:3000", CORS_ALLOW_CREDENTIALS=True).test_client()


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
    client = create_app(production_settings(database_url)).test_client()
    assert allowed_origin(client, "https://app.example") is None
    preflight = client.options(
        "/api/v1/users", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_production_refuses_a_wildcard_with_credentials(database_url):
    settings = production_settings(database_url, CORS_ORIGINS="*", CORS_ALLOW_CREDENTIALS=True)
    with pytest.raises(ConfigError, match=r"^Configuration error: CORS_ORIGINS=\* together with"):
        create_app(settings)
