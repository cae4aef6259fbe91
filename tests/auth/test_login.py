"""POST /auth/login."""

import jwt as pyjwt

from app.auth.passwords import Passwords
from app.config import load_settings
from app.extensions import PASSWORDS
from tests.helpers import PASSWORD, assert_error, attempt_login, get_user_row, settings_for_tests


def test_seed_example_logs_in(client):
    client.post("/auth/register", json={"username": "testuser", "email": "test@example.com", "password": "password123"})
    response = client.post("/auth/login", json={"username": "testuser", "password": "password123"})

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert response.headers["Cache-Control"] == "no-store"


def test_email_works_as_login_name_in_any_case(client, make_user):
    make_user("alice")
    response = client.post("/auth/login", json={"username": "ALICE@example.com", "password": PASSWORD})
    assert response.status_code == 200


def test_tokens_carry_the_standard_claims_and_a_pinned_algorithm(client, make_user):
    make_user("alice")
    tokens = client.post("/auth/login", json={"username": "alice", "password": PASSWORD}).get_json()

    for token, kind in ((tokens["access_token"], "access"), (tokens["refresh_token"], "refresh")):
        header = pyjwt.get_unverified_header(token)
        claims = pyjwt.decode(token, options={"verify_signature": False})
        assert header["alg"] == "HS256"
        assert {"iat", "nbf", "exp", "jti", "type", "sub", "fam"} <= claims.keys()
        assert claims["type"] == kind
        assert "csrf" not in claims
    access = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 15 * 60


def test_unknown_user_wrong_password_and_disabled_account_get_one_answer(client, make_user):
    make_user("alice")
    make_user("dora", is_active=False)
    answers = [
        attempt_login(client, "alice", "not the password"),
        attempt_login(client, "nobody", "not the password"),
        attempt_login(client, "dora"),  # the right password of a disabled account
    ]
    bodies = [assert_error(answer, 401, "unauthorized")["error"] for answer in answers]
    assert bodies[0] == bodies[1] == bodies[2]
    assert len({frozenset(answer.headers.keys()) for answer in answers}) == 1


def test_hash_is_upgraded_on_login_when_the_cost_changes(client, app, make_user, monkeypatch):
    user_id = make_user("alice")
    old_hash = get_user_row(app, user_id).password_hash
    stronger = Passwords(_settings(ARGON2_TIME_COST=2).auth)
    monkeypatch.setitem(app.extensions, PASSWORDS, stronger)
    assert client.post("/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200

    new_hash = get_user_row(app, user_id).password_hash
    assert new_hash != old_hash and ",t=2," in new_hash
    assert stronger.verify(new_hash, PASSWORD)


def test_missing_fields_are_422(client):
    body = assert_error(client.post("/auth/login", json={"username": "alice"}), 422, "validation_error")
    assert body["error"]["details"][0]["field"] == "password"


def _settings(**overrides):
    return load_settings(settings_for_tests("sqlite://", **overrides))
