"""Hostile or odd input gets a 4xx in the envelope, on every database; never a 500."""

import pytest

from tests.helpers import PASSWORD, assert_error


def test_nul_in_a_login_name_is_422(client, make_user):
    make_user("alice")
    response = client.post("/auth/login", json={"username": "ali\x00ce", "password": PASSWORD})
    assert_error(response, 422, "validation_error")


def test_nul_in_a_search_is_422(client, user_headers):
    assert_error(client.get("/api/v1/users?q=a%00b", headers=user_headers), 422, "validation_error")


@pytest.mark.parametrize("name", ["ünïcødé", "名前", "emoji-😀", "' OR 1=1 --", "a" * 254])
def test_odd_login_names_are_a_plain_401(client, name):
    assert_error(client.post("/auth/login", json={"username": name, "password": "x"}), 401, "unauthorized")


@pytest.mark.parametrize("q", ["名前", "😀", "'; DROP TABLE users; --", "\\", "_"])
def test_odd_searches_find_nothing(client, user_headers, q):
    response = client.get("/api/v1/users", query_string={"q": q}, headers=user_headers)
    assert response.status_code == 200 and response.get_json()["total"] == 0


def test_deeply_nested_json_is_400(client):
    body = b"[" * 200_000 + b"]" * 200_000
    assert_error(client.post("/auth/login", data=body, content_type="application/json"), 400, "bad_request")


def test_json_content_type_without_a_body_is_fine_on_get(client, user_headers):
    response = client.get("/api/v1/users", headers={**user_headers, "Content-Type": "application/json"})
    assert response.status_code == 200


def test_booleans_are_not_guessed_from_strings(client, admin_headers, make_user):
    bob = make_user("bob")
    for value in ("yes", "false", 0):
        response = client.put(f"/api/v1/users/{bob}", json={"is_active": value}, headers=admin_headers)
        assert_error(response, 422, "validation_error")


def test_huge_page_numbers_are_empty_or_422(client, user_headers):
    assert client.get("/api/v1/users?page=10000000&per_page=100", headers=user_headers).get_json()["items"] == []
    assert_error(client.get("/api/v1/users?page=10000001", headers=user_headers), 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/auth/login", {"username": "alice", "password": "x" * 1025}),  # bounds the hashing work
        ("post", "/auth/login", {"username": "a" * 255, "password": "x"}),
        ("post", "/auth/register", {"username": "a" * 33, "email": "a@example.com", "password": PASSWORD}),
        ("get", "/api/v1/users?q=" + "a" * 101, None),
        ("get", "/api/v1/users?page=10000001", None),
        ("get", f"/api/v1/users/{2**63}", None),
    ],
)
def test_unbounded_input_is_refused(client, user_headers, method, path, body):
    response = getattr(client, method)(path, json=body, headers=user_headers)
    assert_error(response, 422, "validation_error")
