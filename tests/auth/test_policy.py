"""The password policy: common passwords refused in production, warned about in development."""

import pytest

from app.config import load_settings
from tests.helpers import assert_error, attempt_login, login

BODY = {"username": "newbie", "email": "newbie@example.com"}


@pytest.fixture
def strict_client(app_with):
    return app_with(PASSWORD_REJECT_COMMON=True).test_client()


@pytest.mark.parametrize("password", ["password123", "qwertyuiop", "Password1", "iloveyou"])
def test_common_passwords_are_refused_where_the_policy_says(strict_client, password):
    body = assert_error(
        strict_client.post("/auth/register", json={**BODY, "password": password}), 422, "validation_error"
    )
    assert body["error"]["details"] == [
        {"field": "password", "message": "This password is too common; choose another."}
    ]


def test_an_uncommon_password_passes(strict_client):
    assert strict_client.post("/auth/register", json={**BODY, "password": "violet anchor 42 drums"}).status_code == 201


def test_development_accepts_the_seed_example_with_a_warning(client, caplog):
    response = client.post("/auth/register", json={**BODY, "password": "password123"})
    assert response.status_code == 201
    assert any("common password was accepted" in str(r.msg) for r in caplog.records)
    assert not any("password123" in str(r.msg) for r in caplog.records)


def test_production_refuses_common_passwords_by_default():
    assert load_settings({"FLASK_ENV": "production"}).reject_common_passwords is True
    assert load_settings({"FLASK_ENV": "development"}).reject_common_passwords is False


def test_password_containing_the_username_is_refused(client):
    response = client.post("/auth/register", json={**BODY, "password": "my-newbie-secret"})
    assert assert_error(response, 422, "validation_error")["error"]["details"][0]["field"] == "password"


def test_changing_to_a_common_password_is_refused_too(strict_client, make_user, admin_headers_for):
    user_id = make_user("carol")
    response = strict_client.put(
        f"/api/v1/users/{user_id}", json={"password": "password123"}, headers=admin_headers_for(strict_client)
    )
    assert_error(response, 422, "validation_error")


def test_passwords_are_taken_whole_in_any_script(client):
    cases = {"longest": "x9-" * 42 + "yz", "unicode": "pässwörd ключ 🔑 with  spaces"}
    for name, password in cases.items():
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        assert client.post("/auth/register", json=body).status_code == 201
        assert login(client, name, password)["access_token"]
    assert_error(attempt_login(client, "longest", cases["longest"][:72]), 401, "unauthorized")

    too_long = {"username": "toolong", "email": "toolong@example.com", "password": "x9-" * 43}
    assert_error(client.post("/auth/register", json=too_long), 422, "validation_error")
