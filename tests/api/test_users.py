"""/api/v1/users: who may see and change what."""

import pytest
from pydantic import BaseModel

from app.models import Role
from app.schemas.user import UserListQuery
from tests.helpers import PASSWORD, assert_error, at_once, attempt_login, bearer, get_user_row, login

PUBLIC_FIELDS = {"id", "username", "created_at"}
PRIVATE_FIELDS = PUBLIC_FIELDS | {"email", "role", "is_active", "updated_at"}


@pytest.fixture
def bob(make_user) -> int:
    return make_user("bob")


def test_seed_example_lists_users(client, user_headers, bob):
    response = client.get("/api/v1/users", headers=user_headers)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"items", "page", "per_page", "total", "pages"}
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (1, 20, 2, 1)


def test_others_email_role_and_state_are_for_admins_only(client, user_headers, admin_headers, bob):
    listed = client.get("/api/v1/users", headers=user_headers).get_json()["items"]
    assert {item["username"]: set(item) for item in listed} == {
        "alice": PRIVATE_FIELDS,
        "bob": PUBLIC_FIELDS,
        "root": PUBLIC_FIELDS,  # an admin's role is not shown to users either
    }
    assert set(client.get(f"/api/v1/users/{bob}", headers=user_headers).get_json()) == PUBLIC_FIELDS
    assert set(client.get(f"/api/v1/users/{bob}", headers=admin_headers).get_json()) == PRIVATE_FIELDS


def test_me_is_the_callers_whole_record(client, user_headers):
    body = client.get("/api/v1/users/me", headers=user_headers).get_json()
    assert body["username"] == "alice" and set(body) == PRIVATE_FIELDS


def test_pagination_caps_per_page_and_counts_pages(client, make_user, user_headers):
    for index in range(104):
        make_user(f"user{index:03d}")  # with alice: 105 users

    capped = client.get("/api/v1/users?per_page=1000000", headers=user_headers).get_json()
    assert (capped["per_page"], len(capped["items"]), capped["total"], capped["pages"]) == (100, 100, 105, 2)
    last = client.get("/api/v1/users?page=2&per_page=100", headers=user_headers).get_json()
    assert len(last["items"]) == 5
    beyond = client.get("/api/v1/users?page=50", headers=user_headers).get_json()
    assert beyond["items"] == [] and beyond["total"] == 105


@pytest.mark.parametrize("query", ["page=0", "per_page=0", "page=abc", "sort=password_hash", "unknown=1"])
def test_bad_list_parameters_are_422(client, user_headers, query):
    assert_error(client.get(f"/api/v1/users?{query}", headers=user_headers), 422, "validation_error")


def test_search_and_sort(client, make_user, user_headers):
    for name in ("carol", "carl", "dave"):
        make_user(name)

    found = client.get("/api/v1/users?q=CAR&sort=-username", headers=user_headers).get_json()
    assert [item["username"] for item in found["items"]] == ["carol", "carl"]
    # LIKE wildcards in q are taken literally
    assert client.get("/api/v1/users?q=%25", headers=user_headers).get_json()["total"] == 0


def test_users_cannot_find_or_order_others_by_email(client, user_headers, admin_headers, bob):
    assert client.get("/api/v1/users?q=bob@example", headers=user_headers).get_json()["total"] == 0
    assert client.get("/api/v1/users?q=bob@example", headers=admin_headers).get_json()["total"] == 1
    for sort in ("email", "-email", "password_hash", "role"):
        response = client.get(f"/api/v1/users?sort={sort}", headers=user_headers)
        assert_error(response, 422, "validation_error")


def test_a_missing_record_is_404_for_users_and_admins(client, user_headers, admin_headers):
    for headers in (user_headers, admin_headers):
        for method in ("get", "put", "delete"):
            response = getattr(client, method)("/api/v1/users/987654", json={}, headers=headers)
            assert_error(response, 404, "not_found")


def test_missing_user_is_404_and_an_id_beyond_the_column_is_422(client, user_headers):
    assert_error(client.get("/api/v1/users/999999", headers=user_headers), 404, "not_found")
    # The largest 32-bit id is looked up; one more would overflow the column on PostgreSQL (was a 500).
    assert_error(client.get(f"/api/v1/users/{2**31 - 1}", headers=user_headers), 404, "not_found")
    for too_big in (2**31, 2**63 - 2, 2**70):
        assert_error(client.delete(f"/api/v1/users/{too_big}", headers=user_headers), 422, "validation_error")


def test_user_updates_own_profile_partially(client, user_headers):
    alice = client.get("/api/v1/users/me", headers=user_headers).get_json()
    response = client.put(f"/api/v1/users/{alice['id']}", json={"username": "Alicia"}, headers=user_headers)

    assert response.status_code == 200
    assert response.get_json()["username"] == "alicia"
    assert response.get_json()["email"] == alice["email"]


def test_changing_own_email_or_password_needs_the_current_password(client, user_headers):
    alice_id = client.get("/api/v1/users/me", headers=user_headers).get_json()["id"]
    for change in ({"email": "new@example.com"}, {"password": "another passphrase"}):
        missing = client.put(f"/api/v1/users/{alice_id}", json=change, headers=user_headers)
        assert assert_error(missing, 422, "validation_error")["error"]["details"][0]["field"] == "current_password"
        wrong = client.put(
            f"/api/v1/users/{alice_id}", json={**change, "current_password": "wrong one"}, headers=user_headers
        )
        assert_error(wrong, 422, "validation_error")
    ok = client.put(
        f"/api/v1/users/{alice_id}",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=user_headers,
    )
    assert ok.get_json()["email"] == "new@example.com"


@pytest.mark.parametrize(
    "change", [{"username": "taken_over"}, {"email": "mine@example.com"}, {"password": "chosen by alice"}]
)
def test_a_user_cannot_change_another_users_record(client, app, user_headers, bob, change):
    body = {**change, "current_password": PASSWORD}
    assert_error(client.put(f"/api/v1/users/{bob}", json=body, headers=user_headers), 403, "forbidden")

    stored = get_user_row(app, bob)
    assert (stored.username, stored.email) == ("bob", "bob@example.com")
    assert login(client, "bob")["access_token"]


def test_a_user_cannot_delete_another_user(client, app, user_headers, bob):
    assert_error(client.delete(f"/api/v1/users/{bob}", headers=user_headers), 403, "forbidden")
    assert get_user_row(app, bob) is not None


@pytest.mark.parametrize(
    "change",
    [{"role": "admin"}, {"is_active": False}, {"is_active": True}, {"role": "admin", "username": "boss"}],
)
def test_a_user_cannot_set_admin_only_fields(client, app, user_headers, change):
    alice_id = client.get("/api/v1/users/me", headers=user_headers).get_json()["id"]
    response = client.put(f"/api/v1/users/{alice_id}", json=change, headers=user_headers)

    body = assert_error(response, 422, "validation_error")
    assert {detail["field"] for detail in body["error"]["details"]} == {"role", "is_active"} & change.keys()
    stored = get_user_row(app, alice_id)
    assert (stored.role, stored.is_active, stored.username) == (Role.USER, True, "alice")


@pytest.mark.parametrize("field", ["id", "password_hash", "created_at", "updated_at", "token_families", "is_admin"])
def test_server_managed_fields_are_refused_even_from_admins(client, app, admin_headers, bob, field):
    response = client.put(f"/api/v1/users/{bob}", json={field: "1"}, headers=admin_headers)
    assert_error(response, 422, "validation_error")
    assert get_user_row(app, bob).password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    "body", [{"password_hash": "x"}, {"id": 5}, {"username": None}, {"role": "superuser"}, {"email": "nope"}]
)
def test_unknown_null_or_invalid_fields_are_422(client, admin_headers, bob, body):
    assert_error(client.put(f"/api/v1/users/{bob}", json=body, headers=admin_headers), 422, "validation_error")


def test_admin_changes_role_and_status_of_others(client, admin_headers, bob):
    response = client.put(f"/api/v1/users/{bob}", json={"role": "admin", "is_active": False}, headers=admin_headers)
    assert response.status_code == 200
    assert (response.get_json()["role"], response.get_json()["is_active"]) == ("admin", False)


def test_admin_resets_a_password_without_knowing_the_old_one(client, admin_headers, bob):
    response = client.put(f"/api/v1/users/{bob}", json={"password": "reset by admin"}, headers=admin_headers)
    assert response.status_code == 200
    assert login(client, "bob", "reset by admin")["access_token"]


def test_renaming_onto_a_taken_name_is_409(client, user_headers, bob):
    alice_id = client.get("/api/v1/users/me", headers=user_headers).get_json()["id"]
    response = client.put(f"/api/v1/users/{alice_id}", json={"username": "BOB"}, headers=user_headers)
    assert_error(response, 409, "conflict")


def test_user_deletes_own_account(client, app, user_headers):
    alice_id = client.get("/api/v1/users/me", headers=user_headers).get_json()["id"]
    response = client.delete(f"/api/v1/users/{alice_id}", headers=user_headers)

    assert response.status_code == 204 and response.data == b""
    assert get_user_row(app, alice_id) is None
    assert_error(client.get("/api/v1/users/me", headers=user_headers), 401, "unauthorized")


def test_admin_deletes_others(client, app, admin_headers, bob):
    assert client.delete(f"/api/v1/users/{bob}", headers=admin_headers).status_code == 204
    assert get_user_row(app, bob) is None
    assert_error(client.delete(f"/api/v1/users/{bob}", headers=admin_headers), 404, "not_found")


def test_the_last_admin_cannot_be_removed(client, admin_headers):
    root_id = client.get("/api/v1/users/me", headers=admin_headers).get_json()["id"]
    assert_error(client.put(f"/api/v1/users/{root_id}", json={"role": "user"}, headers=admin_headers), 409, "conflict")
    assert_error(client.delete(f"/api/v1/users/{root_id}", headers=admin_headers), 409, "conflict")


@pytest.mark.parametrize("removal", ["demote", "delete"])
def test_two_admins_removing_each_other_at_once_leave_one(app, make_user, removal):
    ids = [make_user(name, role=Role.ADMIN) for name in ("ann", "ada")]
    headers = [bearer(login(app.test_client(), name)["access_token"]) for name in ("ann", "ada")]

    def remove(caller: int) -> int:
        client, other = app.test_client(), ids[1 - caller]
        if removal == "demote":
            return client.put(f"/api/v1/users/{other}", json={"role": "user"}, headers=headers[caller]).status_code
        return client.delete(f"/api/v1/users/{other}", headers=headers[caller]).status_code

    statuses = at_once(2, remove)

    # The loser is refused whichever way the race went: 409 when both got past authorization, or
    # 403/401 when the winner had already demoted or deleted it.
    succeeded = 200 if removal == "demote" else 204
    assert statuses.count(succeeded) == 1
    assert set(statuses) - {succeeded} <= {401, 403, 409}
    remaining = [get_user_row(app, user_id) for user_id in ids]
    assert [user.role for user in remaining if user is not None].count(Role.ADMIN) == 1


def test_no_answer_holds_a_password_or_its_hash(client, admin_headers, bob):
    answers = [
        client.post("/auth/register", json={"username": "carol", "email": "carol@example.com", "password": PASSWORD}),
        attempt_login(client, "carol"),
    ]
    carol = answers[0].get_json()["id"]
    carol_headers = bearer(answers[1].get_json()["access_token"])
    for headers in (admin_headers, carol_headers):
        answers += [
            client.get("/api/v1/users", headers=headers),
            client.get("/api/v1/users/me", headers=headers),
            client.get(f"/api/v1/users/{bob}", headers=headers),
        ]
    answers.append(client.put(f"/api/v1/users/{carol}", json={"username": "caroline"}, headers=carol_headers))

    assert all(answer.status_code in (200, 201) for answer in answers)
    for answer in answers:
        text = answer.get_data(as_text=True)
        assert "password" not in text and "$argon2" not in text and PASSWORD not in text


def test_every_users_route_needs_a_token(client, bob):
    for method, path in (
        ("get", "/api/v1/users"),
        ("get", f"/api/v1/users/{bob}"),
        ("put", f"/api/v1/users/{bob}"),
        ("delete", f"/api/v1/users/{bob}"),
        ("get", "/api/v1/users/me"),
    ):
        assert_error(getattr(client, method)(path, json={}), 401, "unauthorized")


def test_list_answers_in_the_declared_order_past_the_end_and_when_nothing_matches(client, user_headers, bob):
    page = client.get("/api/v1/users?per_page=1", headers=user_headers).get_json()
    assert list(page) == ["items", "page", "per_page", "total", "pages"]
    assert list(page["items"][0]) == ["id", "username", "created_at", "email", "role", "is_active", "updated_at"]
    assert (page["page"], page["per_page"], page["total"], page["pages"]) == (1, 1, 2, 2)
    beyond = client.get("/api/v1/users?page=3&per_page=1", headers=user_headers).get_json()
    assert beyond == {"items": [], "page": 3, "per_page": 1, "total": 2, "pages": 2}
    nothing = client.get("/api/v1/users?q=nobody", headers=user_headers).get_json()
    assert nothing == {"items": [], "page": 1, "per_page": 20, "total": 0, "pages": 0}


def test_a_query_models_schema_is_built_once_and_each_caller_gets_a_copy():
    first = UserListQuery.model_json_schema()
    first["properties"].clear()  # a caller changing its copy changes nobody else's
    assert UserListQuery.model_json_schema() == BaseModel.model_json_schema.__func__(UserListQuery)  # as built anew
    assert "page" in UserListQuery.model_json_schema()["properties"]
