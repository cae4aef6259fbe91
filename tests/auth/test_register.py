"""POST /auth/register, with the seed's own curl body."""

import pytest

from app.models import Role
from tests.helpers import assert_error, at_once, attempt_login, get_user_row, login

SEED_BODY = {"username": "testuser", "email": "test@example.com", "password": "password123"}


def test_seed_example_registers(client, app):
    response = client.post("/auth/register", json=SEED_BODY)

    assert response.status_code == 201
    body = response.get_json()
    assert body["username"] == "testuser"
    assert body["email"] == "test@example.com"
    assert body["role"] == "user" and body["is_active"] is True
    assert "password" not in response.get_data(as_text=True)
    assert "password_hash" not in body
    stored = get_user_row(app, body["id"])
    assert stored.password_hash.startswith("$argon2id$") and SEED_BODY["password"] not in stored.password_hash


def test_names_and_emails_are_unique_ignoring_case(client):
    assert client.post("/auth/register", json=SEED_BODY).status_code == 201

    response = client.post("/auth/register", json={**SEED_BODY, "username": "TestUser", "email": "other@example.com"})
    body = assert_error(response, 409, "conflict")
    assert body["error"]["details"] == [{"field": "username", "message": "This username is already taken."}]

    response = client.post("/auth/register", json={**SEED_BODY, "username": "other", "email": "TEST@Example.com"})
    assert assert_error(response, 409, "conflict")["error"]["details"][0]["field"] == "email"


def test_stored_lower_case(client):
    response = client.post("/auth/register", json={**SEED_BODY, "username": "MixedCase", "email": "Mixed@Example.COM"})
    assert response.get_json()["username"] == "mixedcase"
    assert response.get_json()["email"] == "mixed@example.com"


def test_invalid_fields_are_listed_and_the_password_is_not_echoed(client):
    response = client.post(
        "/auth/register", json={"username": "x", "email": "not-an-email", "password": "short-secret-xyz"[:5]}
    )
    body = assert_error(response, 422, "validation_error")
    assert {detail["field"] for detail in body["error"]["details"]} == {"username", "email", "password"}
    assert "short" not in response.get_data(as_text=True)


@pytest.mark.parametrize("extra", [{"role": "admin"}, {"is_active": False}, {"id": 1}, {"password_hash": "x"}])
def test_registration_takes_no_privileged_fields(client, extra):
    body = assert_error(client.post("/auth/register", json={**SEED_BODY, **extra}), 422, "validation_error")
    assert [detail["field"] for detail in body["error"]["details"]] == list(extra)
    assert_error(attempt_login(client, SEED_BODY["username"], SEED_BODY["password"]), 401, "unauthorized")


def test_registering_a_taken_name_or_email_leaves_the_account_alone(client, app, make_user):
    alice = make_user("alice")
    for taken in (
        {"username": "ALICE", "email": "new@example.com"},
        {"username": "new", "email": "Alice@Example.com"},
    ):
        response = client.post("/auth/register", json={**taken, "password": "the intruder's password"})
        assert_error(response, 409, "conflict")

    assert get_user_row(app, alice).email == "alice@example.com"
    assert_error(attempt_login(client, "alice", "the intruder's password"), 401, "unauthorized")
    assert login(client, "alice")["access_token"]


def test_concurrent_registrations_of_one_name_give_one_201(app, database_url):
    attempts = 8

    def register(index: int) -> int:
        body = {**SEED_BODY, "email": f"racer{index}@example.com"}
        return app.test_client().post("/auth/register", json=body).status_code

    assert sorted(at_once(attempts, register)) == [201] + [409] * (attempts - 1)


def test_registered_users_are_plain_users(client, app):
    user_id = client.post("/auth/register", json=SEED_BODY).get_json()["id"]
    assert get_user_row(app, user_id).role is Role.USER
