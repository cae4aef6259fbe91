"""Every error, from every layer, in the one envelope; nothing leaks."""

import pytest

from app import create_app
from tests.helpers import assert_error, settings_for_tests


def test_unknown_path_is_404_json(client):
    body = assert_error(client.get("/no/such/thing"), 404, "not_found")
    assert "<" not in body["error"]["message"]


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/auth/login")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_oversized_body_is_413(client):
    response = client.post(
        "/auth/register", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", content_type="application/json"
    )
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("payload", [b"{not json", b'{"username": "a",}', b"\xff\xfe"])
def test_malformed_json_is_400(client, payload):
    response = client.post("/auth/login", data=payload, content_type="application/json")
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "username=a&password=b", "content_type": "application/x-www-form-urlencoded"},
        {"json": ["a", "list"]},
        {"json": "a string"},
        {},
    ],
)
def test_a_body_that_is_not_a_json_object_is_422(client, kwargs):
    assert_error(client.post("/auth/login", **kwargs), 422, "validation_error")


def test_submitted_passwords_are_never_echoed(client):
    secret = "Sup3r-Secret-" + "x" * 200
    response = client.post("/auth/register", json={"username": "ok_name", "email": "a@example.com", "password": secret})
    assert_error(response, 422, "validation_error")
    assert "Sup3r" not in response.get_data(as_text=True)


def test_unexpected_errors_are_500_without_details(database_url):
    app = create_app(settings_for_tests(database_url))

    @app.get("/boom")
    def boom():
        raise RuntimeError("internal detail: SELECT secret FROM vault")

    response = app.test_client().get("/boom")
    body = assert_error(response, 500, "internal_error")
    assert "SELECT" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    assert body["error"]["details"] == []


def test_request_id_is_taken_from_the_client_when_well_formed(client):
    response = client.get("/nope", headers={"X-Request-ID": "abc-123.DEF_4"})
    assert response.get_json()["request_id"] == "abc-123.DEF_4"
    assert response.headers["X-Request-ID"] == "abc-123.DEF_4"


@pytest.mark.parametrize("supplied", ["has space", "x" * 65, "<script>", ""])
def test_a_malformed_request_id_is_replaced(client, supplied):
    response = client.get("/nope", headers={"X-Request-ID": supplied})
    assert response.headers["X-Request-ID"] != supplied
    assert len(response.headers["X-Request-ID"]) == 32


def test_successful_responses_carry_a_request_id_too(client):
    assert len(client.get("/api/v1/health/live").headers["X-Request-ID"]) == 32
