"""Every error, from every layer, in the one envelope; nothing leaks."""

import io

import pytest
from sqlalchemy import insert

from app.extensions import db
from app.models import Role, User
from tests.helpers import PASSWORD, assert_error
from tests.nacos.helpers import dead_address

GENERIC_500 = {"code": "internal_error", "message": "An unexpected error occurred.", "details": []}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/no/such/path", 404, "not_found"),
        ("get", "/api/v1/users/1/../../../etc/passwd", 404, "not_found"),
        ("delete", "/auth/login", 405, "method_not_allowed"),
        ("trace", "/api/v1/users", 405, "method_not_allowed"),
        ("patch", "/api/v1/users/1", 405, "method_not_allowed"),
    ],
)
def test_unknown_paths_and_methods_answer_in_the_envelope(client, method, path, status, code):
    response = client.open(path, method=method.upper())
    assert_error(response, status, code)
    assert "<" not in response.get_data(as_text=True)


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/auth/login")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_oversized_body_is_413(client):
    response = client.post(
        "/auth/register", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", content_type="application/json"
    )
    assert_error(response, 413, "payload_too_large")


def _post_streamed(client, path: str, body: bytes):
    """Chunked, as gunicorn passes such a body on: no Content-Length, and the server ends the stream."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_streamed_body_over_the_limit_is_413(client, make_user):
    make_user("alice")
    valid = f'{{"username": "alice", "password": "{PASSWORD}"}}'.encode()
    assert _post_streamed(client, "/auth/login", valid).status_code == 200
    padded = valid + b" " * (2 * 1024 * 1024)  # still valid JSON: only its size is wrong
    assert_error(_post_streamed(client, "/auth/login", padded), 413, "payload_too_large")


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


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/register", {"username": "echo", "email": "echo@example.com", "password": "MARKER-" * 20}),
        ("/auth/register", {"username": "echo", "email": "echo@example.com", "password": "echo-MARKER-1"}),
        ("/auth/register", {"username": "echo", "email": "MARKER@", "password": PASSWORD}),
        ("/auth/login", {"username": "echo", "password": "MARKER-" * 150}),
        ("/auth/login", {"username": "echo", "password": ["MARKER"]}),
    ],
)
def test_refusals_never_echo_what_was_sent(client, path, body):
    response = client.post(path, json=body)
    assert_error(response, 422, "validation_error")
    assert "MARKER" not in response.get_data(as_text=True)


def test_unexpected_errors_are_500_without_details(app_with):
    crashing = app_with()

    @crashing.get("/boom")
    def boom():
        raise RuntimeError("SELECT password_hash FROM users -- at /srv/app/secret.py line 3")

    response = crashing.test_client().get("/boom")
    body = assert_error(response, 500, "internal_error")
    assert body["error"] == GENERIC_500
    assert "SELECT" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)


def test_a_database_error_shows_no_sql_and_logs_no_values(app_with, make_user, capsys):
    make_user("alice")
    crashing = app_with()
    # Only the taken username makes the insert fail: the database's own message may name it, but
    # the other values exist nowhere but in the statement's parameters.
    row = {"username": "alice", "email": "only-in-the-parameters@example.com", "password_hash": "$argon2id$v=19$x"}

    @crashing.post("/duplicate")
    def duplicate():
        db.session.execute(insert(User).values(**row, role=Role.USER, is_active=True))
        return "not reached"

    response = crashing.test_client().post("/duplicate")
    body = assert_error(response, 500, "internal_error")
    assert body["error"] == GENERIC_500

    logged = capsys.readouterr().err
    assert "unhandled error" in logged and "IntegrityError" in logged
    assert row["email"] not in logged and row["password_hash"] not in logged


def test_an_unreachable_database_is_a_503_that_names_nothing(app_with):
    address = dead_address()
    down = app_with(DATABASE_URL=f"postgresql://nobody@{address}/secretdb", DATABASE_CONNECT_TIMEOUT=2)
    response = down.test_client().post("/auth/login", json={"username": "alice", "password": PASSWORD})

    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "5"
    text = response.get_data(as_text=True).lower()
    for word in (address, address.split(":")[1], "secretdb", "nobody", "psycopg", "connection", "select"):
        assert word not in text


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
