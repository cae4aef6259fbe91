"""Refresh rotation, logout, and every way a token can be bad."""

import base64
import json
import subprocess
import sys
import time

import jwt as pyjwt
import pytest

from app import create_app
from app.models import Role
from tests.helpers import JWT_SECRET, PASSWORD, assert_error, at_once, bearer, login, me, refresh, settings_for_tests
from tests.processes import ROOT


@pytest.fixture
def tokens(client, make_user):
    make_user("alice")
    return login(client, "alice")


def test_refresh_rotates_the_pair(client, tokens):
    response = refresh(client, tokens["refresh_token"])

    assert response.status_code == 200
    fresh = response.get_json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert me(client, fresh["access_token"]).status_code == 200
    assert refresh(client, fresh["refresh_token"]).status_code == 200


def test_reused_refresh_token_revokes_the_whole_login(client, tokens):
    fresh = refresh(client, tokens["refresh_token"]).get_json()

    replay = refresh(client, tokens["refresh_token"])

    assert_error(replay, 401, "unauthorized")
    assert_error(refresh(client, fresh["refresh_token"]), 401, "unauthorized")
    assert_error(me(client, fresh["access_token"]), 401, "unauthorized")
    assert_error(me(client, tokens["access_token"]), 401, "unauthorized")


def test_reuse_revokes_only_that_login(client, tokens):
    other_login = login(client, "alice")
    refresh(client, tokens["refresh_token"])
    refresh(client, tokens["refresh_token"])

    assert me(client, other_login["access_token"]).status_code == 200


def test_logout_revokes_access_and_refresh_tokens(client, tokens):
    response = client.post("/auth/logout", headers=bearer(tokens["access_token"]))

    assert response.status_code == 204
    assert_error(me(client, tokens["access_token"]), 401, "unauthorized")
    assert_error(refresh(client, tokens["refresh_token"]), 401, "unauthorized")


def test_refresh_token_is_refused_as_access_token_and_vice_versa(client, tokens):
    assert_error(me(client, tokens["refresh_token"]), 401, "unauthorized")
    assert_error(refresh(client, tokens["access_token"]), 401, "unauthorized")
    assert_error(client.post("/auth/logout", headers=bearer(tokens["refresh_token"])), 401, "unauthorized")


def test_one_refresh_token_raced_buys_one_new_pair(app, tokens):
    racers = 4
    statuses = at_once(racers, lambda _: refresh(app.test_client(), tokens["refresh_token"]).status_code)
    assert sorted(statuses) == [200] + [401] * (racers - 1)


def test_missing_token(client):
    response = client.get("/api/v1/users/me")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forged(kind: str, token: str, admin_id: int) -> str:
    header, payload, signature = token.split(".")
    claims = pyjwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    if kind == "alg-none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    if kind == "wrong-key":
        return pyjwt.encode(claims, "another-deployments-key-" * 2, algorithm="HS256")
    if kind == "other-algorithm":  # the right key, but not the pinned algorithm
        return pyjwt.encode(claims, JWT_SECRET, algorithm="HS512")
    if kind == "tampered-signature":  # the first character: the last one may only carry padding bits
        return f"{header}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    if kind == "tampered-payload":
        return f"{header}.{_b64({**claims, 'sub': str(admin_id)})}.{signature}"
    if kind == "expired":
        return pyjwt.encode({**claims, "exp": now - 1}, JWT_SECRET, algorithm="HS256")
    if kind == "not-yet-valid":
        return pyjwt.encode({**claims, "nbf": now + 600, "exp": now + 900}, JWT_SECRET, algorithm="HS256")
    if kind == "garbage":
        return "not.a.token"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "alg-none",
        "wrong-key",
        "other-algorithm",
        "tampered-signature",
        "tampered-payload",
        "expired",
        "not-yet-valid",
        "garbage",
    ],
)
def test_forged_or_stale_tokens_are_refused(client, tokens, make_user, kind):
    response = me(client, _forged(kind, tokens["access_token"], make_user("root", role=Role.ADMIN)))
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("change", ["disable", "delete"])
def test_tokens_of_a_disabled_or_deleted_user_are_refused(client, tokens, admin_headers, change):
    alice_id = me(client, tokens["access_token"]).get_json()["id"]
    if change == "disable":
        client.put(f"/api/v1/users/{alice_id}", json={"is_active": False}, headers=admin_headers)
    else:
        client.delete(f"/api/v1/users/{alice_id}", headers=admin_headers)

    assert_error(me(client, tokens["access_token"]), 401, "unauthorized")
    assert_error(refresh(client, tokens["refresh_token"]), 401, "unauthorized")


def test_password_change_ends_the_other_logins(client, tokens):
    second = login(client, "alice")
    alice_id = me(client, tokens["access_token"]).get_json()["id"]

    response = client.put(
        f"/api/v1/users/{alice_id}",
        json={"password": "a brand new passphrase", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )

    assert response.status_code == 200
    assert me(client, tokens["access_token"]).status_code == 200
    assert_error(me(client, second["access_token"]), 401, "unauthorized")
    assert login(client, "alice", "a brand new passphrase")["access_token"]


def test_a_password_reset_ends_every_login_of_the_user(client, tokens, admin_headers):
    alice_id = me(client, tokens["access_token"]).get_json()["id"]
    response = client.put(f"/api/v1/users/{alice_id}", json={"password": "reset by the admin"}, headers=admin_headers)
    assert response.status_code == 200
    assert_error(me(client, tokens["access_token"]), 401, "unauthorized")
    assert_error(refresh(client, tokens["refresh_token"]), 401, "unauthorized")


def test_tokens_are_taken_from_the_authorization_header_only(client, tokens):
    token = tokens["access_token"]
    for query in (f"jwt={token}", f"access_token={token}", f"token={token}"):
        assert_error(client.get(f"/api/v1/users/me?{query}"), 401, "unauthorized")
    client.set_cookie("access_token_cookie", token)
    assert_error(client.get("/api/v1/users/me"), 401, "unauthorized")


def test_role_change_takes_effect_on_the_next_request(client, tokens, admin_headers):
    alice_id = me(client, tokens["access_token"]).get_json()["id"]
    client.put(f"/api/v1/users/{alice_id}", json={"role": "admin"}, headers=admin_headers)

    response = client.get("/api/v1/users", headers=bearer(tokens["access_token"]))
    assert all("email" in item for item in response.get_json()["items"])


def test_revocation_fails_closed_when_its_store_is_down(tokens):
    # The same secrets, but the database that holds the logins (and so their revocation) is down.
    down = create_app(settings_for_tests("postgresql://nobody@127.0.0.1:9/none", DATABASE_CONNECT_TIMEOUT=2))
    response = me(down.test_client(), tokens["access_token"])
    assert_error(response, 503, "service_unavailable")


@pytest.mark.parametrize(
    "malformed",
    [
        pytest.param({"sub": "abc"}, id="sub-not-a-number"),
        pytest.param({"sub": {"id": 1}}, id="sub-an-object"),
        pytest.param({"sub": [1]}, id="sub-a-list"),
        pytest.param({"sub": 1}, id="sub-a-number"),
        pytest.param({"sub": "1" * 40}, id="sub-out-of-range"),
        pytest.param({"sub": None}, id="sub-missing"),
        pytest.param({"jti": None}, id="jti-missing"),
        pytest.param({"type": ["access"]}, id="type-a-list"),
        pytest.param({"type": "id"}, id="type-unknown"),
        pytest.param({"fam": "abc"}, id="family-not-a-number"),
        pytest.param({"fam": {"id": 1}}, id="family-an-object"),
        pytest.param({"fam": None}, id="family-missing"),
    ],
)
def test_signed_tokens_with_malformed_claims_get_401(client, tokens, malformed):
    # Signed with the right key, so only the shape of the claims can give them away.
    claims = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    claims = {name: value for name, value in {**claims, **malformed}.items() if value is not None}
    response = me(client, pyjwt.encode(claims, JWT_SECRET, algorithm="HS256"))
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


# Imports the whole app, then serves a token-protected route from an app of its own on the shared JWTManager.
_IMPORT_THEN_SERVE = """
import json
from flask import Flask
from flask_jwt_extended import jwt_required
import app
from app.extensions import jwt

plain = Flask("plain")
plain.config["JWT_SECRET_KEY"] = "k" * 64
jwt.init_app(plain)
plain.add_url_rule("/", view_func=jwt_required()(lambda: "ok"))
print(json.dumps(plain.test_client().get("/").get_json()))
"""


def test_token_callbacks_come_with_create_app_not_with_an_import():
    # In a process of its own: this one's create_app() has registered them on the shared JWTManager.
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_THEN_SERVE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout.splitlines()[-1]) == {"msg": "Missing Authorization Header"}  # the library's own
