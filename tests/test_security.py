"""Security tests, and the index of what they verify.

Each class is one item of the OWASP API Security Top 10 (2023) and names the OWASP ASVS 4.0.3
requirements its tests verify. "Also" names tests elsewhere that go further into the same item.

API1:2023 Broken Object Level Authorization: TestObjectLevelAuthorization
    V4.1.1, V4.2.1, V13.1.4: every record is checked against the caller in the service layer; others'
    records are read-only and public fields only. V13.2.1: PUT and DELETE on them are refused.
    Also tests/api/test_users.py::test_user_cannot_change_or_delete_another_user.
API2:2023 Broken Authentication: TestTokens, TestLogin
    Tokens. V3.5.3: signed, algorithm pinned to HS256 (no "none", no other algorithm, no tampering,
    expiry and not-before honoured). V3.3.1: logout and expiry end a token. V3.3.3: a new password ends
    the other logins. V3.1.1, V13.1.3: tokens travel in the Authorization header only, never in the URL.
    V4.1.5: a token is refused (503) while revocation cannot be checked. V11.1.6: a refresh token buys
    one new pair, even raced, and its reuse revokes the login.
    Login. V2.2.1: limits per address; budgets of password guesses per account and address, and
    per account from addresses new to it (at most 100 an hour), that others cannot use to lock the
    owner out, counted before the check (parallel guesses cannot overrun them), and spent by the
    current-password check of a change too (a stolen token is no oracle).
    V2.1.2, V2.1.3, V2.1.4: passwords of 8 to 128 characters, never truncated, any Unicode. V2.1.6: the
    current password is needed to change it. V2.1.7: common passwords refused where configured.
    V2.4.1: stored as Argon2id.
    Enumeration (ASVS 4.0.3 has no requirement of its own; CWE-204): an unknown user, a wrong password
    and a disabled account get one answer, and the per-account limit answers alike for unknown accounts.
    Registration answers 409 for a taken name or email, which does tell that an account exists: accepted
    (a sign-up without email verification cannot hide it), limited per address by RATE_LIMIT_REGISTER.
    Also tests/auth/test_tokens.py, tests/auth/test_login.py, tests/auth/test_rate_limits.py,
    tests/auth/test_policy.py, tests/auth/test_register.py.
API3:2023 Broken Object Property Level Authorization: TestPropertyLevelAuthorization
    V5.1.2, V4.1.2: no mass assignment; role and is_active are for admins, server-managed fields
    (id, password_hash, timestamps) for nobody. V13.2.2: unknown fields are refused by the schemas.
    V4.1.3: no excessive data exposure; no response holds a password hash, and others' email, role and
    state are shown to admins only (nor can others search or sort by email).
    Also tests/api/test_users.py::test_user_cannot_make_themselves_admin,
    tests/api/test_users.py::test_no_response_ever_holds_a_password_hash.
API4:2023 Unrestricted Resource Consumption: TestResourceLimits
    V12.1.1: bodies over MAX_CONTENT_LENGTH get 413, streamed (chunked) ones too. V11.1.4: rate limits
    answer 429 with Retry-After. V5.1.4: strings, ids, pages and page sizes are bounded; JSON nesting is.
    Also tests/test_hostile.py, tests/test_errors.py::test_oversized_body_is_413.
API5:2023 Broken Function Level Authorization: TestFunctionLevelAuthorization
    V4.1.3, V13.1.4: admin-only operations (Nacos registration control) refuse users; the role is read
    at every request, so a demoted admin loses them at once. The metrics token is a secret of its own.
    Also tests/monitoring/test_nacos.py::test_manual_control_needs_an_admin.
API6:2023 Unrestricted Access to Sensitive Business Flows: TestResourceLimits
    The flows worth automating against are registration and login, both limited per client address
    (login also per account), V11.1.4: test_login_register_and_refresh_are_rate_limited.
API7:2023 Server Side Request Forgery: TestServerSideRequests
    V5.2.6, V12.6.1: no request goes to an address a client chose; the one client value in an outgoing
    request (a service name, sent to the configured Nacos) travels as one encoded parameter.
API8:2023 Security Misconfiguration: TestSecurityHeaders, TestCors, TestSecretsAtStart, TestErrorLeakage, TestLogs
    Headers: V14.4.1, V14.4.3, V14.4.4, V14.4.6, V14.4.7; V8.1.1, V8.2.1 (no-store on tokens and on
    authenticated answers). V14.5.1: TRACE and unused methods get 405 (TestErrorLeakage).
    CORS: V14.5.3 (listed origins only, never "null", no wildcard with credentials), V14.5.2.
    Start: V2.10.4 (production refuses unset, placeholder or short secrets), V14.3.2 (and DEBUG).
    Errors: V7.4.1, V7.4.3: one generic envelope with a request id; no traceback, SQL or driver text.
    Logs: V7.1.1, V7.1.2, V8.3.1: no passwords, tokens, hashes or SQL values, even in a traceback;
    query strings are not logged.
    Also tests/test_web.py, tests/test_config.py, tests/test_errors.py, tests/test_logging.py.
API9:2023 Improper Inventory Management: TestInventory
    Every route served is in the OpenAPI document (no ASVS 4.0.3 number of its own), and the
    document's security is what each operation asks for: tests/test_docs.py.

Not covered, and why:
    API10:2023 Unsafe Consumption of APIs. The one upstream is Nacos, part of the deployment and trusted
    (authenticated with NACOS_USERNAME/NACOS_PASSWORD when set). call_service() uses the instances Nacos
    lists as they are, so whoever can write to the registry can redirect calls: keep Nacos private and
    its auth on. tests/nacos/ covers failover, auth and stale lists, not malformed or hostile answers.
    V14.4.5 (HSTS): TLS ends at the proxy or ingress in front of the service, which must send it.
    V14.4.2 (Content-Disposition on API answers): not sent; JSON answers carry nosniff and a
    default-src 'none' CSP instead.
    V14.3.3 (versions): gunicorn sends "Server: gunicorn" without one; not visible to a test client.
    V13.1.5: a body that is not JSON gets 422, not 415.
    V2.1.1: the minimum is 8 characters (NIST SP 800-63B's), not 12; the common-password list does the rest.
    V4.3.1, V2.5.x, V2.2.3, V2.5.5, V3.3.4: no MFA, credential recovery, notifications or session list.
    V6.4.1, V6.4.2: secrets come from the environment; a vault is the deployment's.
    Timing: an unknown user costs one hash like a wrong password (Passwords.waste_time); tests make no
    timing assertions.
"""

from __future__ import annotations

import io
import json
import re
import time
from urllib.parse import quote

import jwt as pyjwt
import pytest
from limits import parse_many
from sqlalchemy import insert

import app.services.auth as auth_service
from app import create_app
from app.config import PLACEHOLDER_SECRETS, ConfigError, LimitSettings, load_settings
from app.core.logging import configure_logging
from app.extensions import db
from app.models import Role, User
from tests.helpers import (
    JWT_SECRET,
    PASSWORD,
    STRONG_JWT_SECRET,
    assert_error,
    at_once,
    bearer,
    get_user_row,
    login,
    production_settings,
    served_operations,
    settings_for_tests,
)
from tests.nacos.helpers import dead_address

PUBLIC_FIELDS = {"id", "username", "created_at"}
PRIVATE_FIELDS = PUBLIC_FIELDS | {"email", "role", "is_active", "updated_at"}
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture
def app_with(app, database_url):
    """app_with(**settings) -> another app on the test database (its tables emptied after the test)."""
    made = []

    def make(**settings):
        made.append(create_app(settings_for_tests(database_url, **settings)))
        return made[-1]

    yield make
    for extra in made:
        with extra.app_context():
            db.engine.dispose()


@pytest.fixture
def bob(make_user) -> int:
    return make_user("bob")


def attempt_login(client, username: str, password: str = PASSWORD):
    return client.post("/auth/login", json={"username": username, "password": password})


def me(client, token: str):
    return client.get("/api/v1/users/me", headers=bearer(token))


def refresh(client, token: str):
    return client.post("/auth/refresh", headers=bearer(token))


def user_id_of(client, headers) -> int:
    return client.get("/api/v1/users/me", headers=headers).get_json()["id"]


def claims_of(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def _b64(data: bytes) -> str:
    return pyjwt.utils.base64url_encode(data).decode()


class TestObjectLevelAuthorization:
    """API1:2023; V4.1.1, V4.2.1, V13.1.4, V13.2.1."""

    def test_another_users_record_is_read_only_and_public(self, client, user_headers, bob):
        response = client.get(f"/api/v1/users/{bob}", headers=user_headers)
        assert response.status_code == 200 and set(response.get_json()) == PUBLIC_FIELDS

    @pytest.mark.parametrize(
        "change", [{"username": "taken_over"}, {"email": "mine@example.com"}, {"password": "chosen by alice"}]
    )
    def test_a_user_cannot_change_another_users_record(self, client, app, user_headers, bob, change):
        body = {**change, "current_password": PASSWORD}
        assert_error(client.put(f"/api/v1/users/{bob}", json=body, headers=user_headers), 403, "forbidden")

        stored = get_user_row(app, bob)
        assert (stored.username, stored.email) == ("bob", "bob@example.com")
        assert login(client, "bob")["access_token"]

    def test_a_user_cannot_delete_another_user(self, client, app, user_headers, bob):
        assert_error(client.delete(f"/api/v1/users/{bob}", headers=user_headers), 403, "forbidden")
        assert get_user_row(app, bob) is not None

    def test_an_admin_may_change_and_delete_any_record(self, client, app, admin_headers, bob):
        assert client.put(f"/api/v1/users/{bob}", json={"username": "robert"}, headers=admin_headers).status_code == 200
        assert client.delete(f"/api/v1/users/{bob}", headers=admin_headers).status_code == 204
        assert get_user_row(app, bob) is None

    def test_a_missing_record_is_404_for_users_and_admins(self, client, user_headers, admin_headers):
        for headers in (user_headers, admin_headers):
            for method in ("get", "put", "delete"):
                response = getattr(client, method)("/api/v1/users/987654", json={}, headers=headers)
                assert_error(response, 404, "not_found")


class TestPropertyLevelAuthorization:
    """API3:2023; V5.1.2, V4.1.2, V4.1.3, V13.2.2."""

    @pytest.mark.parametrize("change", [{"role": "admin"}, {"is_active": False}, {"role": "admin", "username": "boss"}])
    def test_a_user_cannot_set_admin_only_fields(self, client, app, user_headers, change):
        alice = user_id_of(client, user_headers)
        response = client.put(f"/api/v1/users/{alice}", json=change, headers=user_headers)

        body = assert_error(response, 422, "validation_error")
        assert {detail["field"] for detail in body["error"]["details"]} == {"role", "is_active"} & change.keys()
        stored = get_user_row(app, alice)
        assert (stored.role, stored.is_active, stored.username) == (Role.USER, True, "alice")

    @pytest.mark.parametrize("field", ["id", "password_hash", "created_at", "updated_at", "token_families", "is_admin"])
    def test_server_managed_fields_are_refused_even_from_admins(self, client, app, admin_headers, bob, field):
        response = client.put(f"/api/v1/users/{bob}", json={field: "1"}, headers=admin_headers)
        assert_error(response, 422, "validation_error")
        assert get_user_row(app, bob).password_hash.startswith("$argon2id$")

    @pytest.mark.parametrize("extra", [{"role": "admin"}, {"is_active": False}, {"id": 1}, {"password_hash": "x"}])
    def test_registration_takes_no_privileged_fields(self, client, extra):
        body = {"username": "mallory", "email": "mallory@example.com", "password": PASSWORD, **extra}
        assert_error(client.post("/auth/register", json=body), 422, "validation_error")
        assert_error(attempt_login(client, "mallory"), 401, "unauthorized")

    def test_no_answer_holds_a_password_or_its_hash(self, client, admin_headers, bob):
        answers = [
            client.post(
                "/auth/register", json={"username": "carol", "email": "carol@example.com", "password": PASSWORD}
            ),
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

    def test_others_email_role_and_state_are_for_admins_only(self, client, user_headers, admin_headers, bob):
        listed = client.get("/api/v1/users", headers=user_headers).get_json()["items"]
        assert {item["username"]: set(item) for item in listed} == {
            "alice": PRIVATE_FIELDS,
            "bob": PUBLIC_FIELDS,
            "root": PUBLIC_FIELDS,  # an admin's role is not shown to users either
        }
        assert set(client.get(f"/api/v1/users/{bob}", headers=user_headers).get_json()) == PUBLIC_FIELDS
        assert set(client.get(f"/api/v1/users/{bob}", headers=admin_headers).get_json()) == PRIVATE_FIELDS

    def test_users_cannot_find_or_order_others_by_email(self, client, user_headers, admin_headers, bob):
        assert client.get("/api/v1/users?q=bob@example", headers=user_headers).get_json()["total"] == 0
        assert client.get("/api/v1/users?q=bob@example", headers=admin_headers).get_json()["total"] == 1
        for sort in ("email", "-email", "password_hash", "role"):
            response = client.get(f"/api/v1/users?sort={sort}", headers=user_headers)
            assert_error(response, 422, "validation_error")


class TestFunctionLevelAuthorization:
    """API5:2023; V4.1.3, V13.1.4."""

    @pytest.mark.parametrize("action", ["register", "deregister"])
    def test_nacos_control_is_for_admins(self, client, user_headers, admin_headers, action):
        path = f"/monitoring/nacos/service/{action}"
        assert_error(client.post(path), 401, "unauthorized")
        assert_error(client.post(path, headers=user_headers), 403, "forbidden")
        # An admin passes authorization and reaches the operation, which has no Nacos in these tests.
        assert_error(client.post(path, headers=admin_headers), 503, "service_unavailable")

    def test_a_demoted_admin_loses_admin_rights_at_once(self, client, make_user, admin_headers):
        make_user("deputy", role=Role.ADMIN)
        deputy_headers = bearer(login(client, "deputy")["access_token"])
        deputy = user_id_of(client, deputy_headers)
        assert client.put(f"/api/v1/users/{deputy}", json={"role": "user"}, headers=admin_headers).status_code == 200

        response = client.post("/monitoring/nacos/service/register", headers=deputy_headers)
        assert_error(response, 403, "forbidden")

    def test_metrics_need_their_own_token_when_one_is_set(self, app_with, make_user):
        client = app_with(METRICS_TOKEN="metrics-" + "m" * 32).test_client()
        make_user("alice")
        user_token = login(client, "alice")["access_token"]

        assert_error(client.get("/monitoring/metrics"), 401, "unauthorized")
        assert_error(client.get("/monitoring/metrics", headers=bearer(user_token)), 401, "unauthorized")
        assert_error(client.get("/monitoring/metrics", headers=bearer("metrics-wrong")), 401, "unauthorized")
        assert client.get("/monitoring/metrics", headers=bearer("metrics-" + "m" * 32)).status_code == 200


class TestTokens:
    """API2:2023; V3.5.3, V3.3.1, V3.3.3, V3.1.1, V13.1.3, V4.1.5, V11.1.6."""

    @pytest.fixture
    def tokens(self, client, make_user) -> dict:
        make_user("alice")
        return login(client, "alice")

    @staticmethod
    def _forged(kind: str, token: str, admin_id: int) -> str:
        claims = claims_of(token)
        header, payload, signature = token.split(".")
        now = int(time.time())
        if kind == "alg-none":
            return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."
        if kind == "wrong-key":
            return pyjwt.encode(claims, "another-deployments-key-" * 2, algorithm="HS256")
        if kind == "other-algorithm":  # the right key, but not the pinned algorithm
            return pyjwt.encode(claims, JWT_SECRET, algorithm="HS512")
        if kind == "tampered-signature":  # the first character: the last one may only carry padding bits
            return f"{header}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
        if kind == "tampered-payload":
            return f"{header}.{_b64(json.dumps({**claims, 'sub': str(admin_id)}).encode())}.{signature}"
        if kind == "expired":
            return pyjwt.encode({**claims, "exp": now - 1}, JWT_SECRET, algorithm="HS256")
        if kind == "not-yet-valid":
            return pyjwt.encode({**claims, "nbf": now + 600, "exp": now + 900}, JWT_SECRET, algorithm="HS256")
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
        ],
    )
    def test_forged_or_stale_tokens_are_refused(self, client, tokens, make_user, kind):
        forged = self._forged(kind, tokens["access_token"], make_user("root", role=Role.ADMIN))
        response = me(client, forged)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"

    def test_issued_tokens_are_hs256_and_access_tokens_short_lived(self, tokens):
        for token in (tokens["access_token"], tokens["refresh_token"]):
            assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
        access = claims_of(tokens["access_token"])
        assert access["exp"] - access["iat"] <= 15 * 60

    def test_a_refresh_token_is_no_access_token_and_vice_versa(self, client, tokens):
        assert_error(me(client, tokens["refresh_token"]), 401, "unauthorized")
        assert_error(refresh(client, tokens["access_token"]), 401, "unauthorized")
        assert_error(client.post("/auth/logout", headers=bearer(tokens["refresh_token"])), 401, "unauthorized")

    def test_logout_ends_the_logins_access_and_refresh_tokens(self, client, tokens):
        assert client.post("/auth/logout", headers=bearer(tokens["access_token"])).status_code == 204
        assert_error(me(client, tokens["access_token"]), 401, "unauthorized")
        assert_error(refresh(client, tokens["refresh_token"]), 401, "unauthorized")

    def test_a_reused_refresh_token_revokes_the_whole_login(self, client, tokens):
        fresh = refresh(client, tokens["refresh_token"]).get_json()
        assert_error(refresh(client, tokens["refresh_token"]), 401, "unauthorized")
        assert_error(me(client, fresh["access_token"]), 401, "unauthorized")
        assert_error(refresh(client, fresh["refresh_token"]), 401, "unauthorized")

    def test_one_refresh_token_raced_buys_one_new_pair(self, app, tokens):
        racers = 4
        statuses = at_once(racers, lambda _: refresh(app.test_client(), tokens["refresh_token"]).status_code)
        assert sorted(statuses) == [200] + [401] * (racers - 1)

    @pytest.mark.parametrize("change", ["disable", "delete"])
    def test_tokens_of_a_disabled_or_deleted_user_are_refused(self, client, tokens, admin_headers, change):
        alice = me(client, tokens["access_token"]).get_json()["id"]
        if change == "disable":
            client.put(f"/api/v1/users/{alice}", json={"is_active": False}, headers=admin_headers)
        else:
            client.delete(f"/api/v1/users/{alice}", headers=admin_headers)

        assert_error(me(client, tokens["access_token"]), 401, "unauthorized")
        assert_error(refresh(client, tokens["refresh_token"]), 401, "unauthorized")

    def test_a_password_reset_ends_every_login_of_the_user(self, client, tokens, admin_headers):
        alice = me(client, tokens["access_token"]).get_json()["id"]
        response = client.put(f"/api/v1/users/{alice}", json={"password": "reset by the admin"}, headers=admin_headers)
        assert response.status_code == 200
        assert_error(me(client, tokens["access_token"]), 401, "unauthorized")
        assert_error(refresh(client, tokens["refresh_token"]), 401, "unauthorized")

    def test_tokens_are_taken_from_the_authorization_header_only(self, client, tokens):
        token = tokens["access_token"]
        for query in (f"jwt={token}", f"access_token={token}", f"token={token}"):
            assert_error(client.get(f"/api/v1/users/me?{query}"), 401, "unauthorized")
        client.set_cookie("access_token_cookie", token)
        assert_error(client.get("/api/v1/users/me"), 401, "unauthorized")

    def test_tokens_are_refused_while_revocation_cannot_be_checked(self, app_with, tokens):
        down = app_with(DATABASE_URL=f"postgresql://nobody@{dead_address()}/none", DATABASE_CONNECT_TIMEOUT=2)
        assert_error(me(down.test_client(), tokens["access_token"]), 503, "service_unavailable")


class TestLogin:
    """API2:2023; V2.2.1, V2.1.2, V2.1.3, V2.1.4, V2.1.6, V2.1.7, V2.4.1; enumeration (CWE-204)."""

    @pytest.fixture
    def limited(self, app_with):
        """limited(**limits) -> a client of an app with rate limits on, generous unless overridden."""
        defaults = {"RATE_LIMIT_ENABLED": True, "RATE_LIMIT_LOGIN": "100 per minute"}
        return lambda **limits: app_with(**defaults, **limits).test_client()

    def test_unknown_user_wrong_password_and_disabled_account_get_one_answer(self, client, make_user):
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

    def test_the_account_limit_answers_alike_for_unknown_accounts(self, limited, make_user):
        make_user("alice")
        client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute")
        for name in ("alice", "nobody"):
            assert [attempt_login(client, name, "wrong guess").status_code for _ in range(3)] == [401, 401, 429]

    def test_the_account_limit_counts_an_account_under_any_of_its_names(self, limited, make_user):
        make_user("alice")
        client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute")
        assert [attempt_login(client, "alice", "wrong guess").status_code for _ in range(2)] == [401, 401]
        # Logging in by email is the same account: its budget of guesses is already spent.
        assert_error(attempt_login(client, "alice@example.com", "wrong guess"), 429, "rate_limited")

    def test_an_account_takes_at_most_100_failed_logins_an_hour_by_default(self):
        limits = parse_many(LimitSettings.model_fields["RATE_LIMIT_LOGIN_ACCOUNT"].default)
        assert min(limit.amount * 3600 / limit.get_expiry() for limit in limits) <= 100

    def test_every_limit_of_the_account_setting_applies(self, limited, make_user):
        make_user("alice")
        client = limited(RATE_LIMIT_LOGIN_ACCOUNT="100 per minute;2 per hour")
        assert [attempt_login(client, "alice", "wrong guess").status_code for _ in range(3)] == [401, 401, 429]

    def test_registering_a_taken_name_or_email_leaves_the_account_alone(self, client, app, make_user):
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

    def test_passwords_are_taken_whole_in_any_script(self, client):
        cases = {"longest": "x9-" * 42 + "yz", "unicode": "pässwörd ключ 🔑 with  spaces"}
        for name, password in cases.items():
            body = {"username": name, "email": f"{name}@example.com", "password": password}
            assert client.post("/auth/register", json=body).status_code == 201
            assert login(client, name, password)["access_token"]
        assert_error(attempt_login(client, "longest", cases["longest"][:72]), 401, "unauthorized")

        too_long = {"username": "toolong", "email": "toolong@example.com", "password": "x9-" * 43}
        assert_error(client.post("/auth/register", json=too_long), 422, "validation_error")

    def test_common_passwords_are_refused_where_configured(self, app_with):
        client = app_with(PASSWORD_REJECT_COMMON=True).test_client()
        body = {"username": "seeduser", "email": "seed@example.com", "password": "password123"}
        assert_error(client.post("/auth/register", json=body), 422, "validation_error")

    def test_changing_your_password_needs_the_current_one(self, client, user_headers):
        alice = user_id_of(client, user_headers)
        response = client.put(f"/api/v1/users/{alice}", json={"password": "a new passphrase"}, headers=user_headers)
        assert_error(response, 422, "validation_error")
        assert login(client, "alice")["access_token"]

    def test_passwords_are_stored_as_argon2id(self, app, make_user):
        stored = get_user_row(app, make_user("alice")).password_hash
        assert stored.startswith("$argon2id$") and PASSWORD not in stored


class TestResourceLimits:
    """API4:2023 and API6:2023; V12.1.1, V11.1.4, V5.1.4."""

    def test_a_body_over_the_limit_is_413(self, client):
        body = b'{"username": "alice", "password": "' + b"x" * (1024 * 1024) + b'"}'
        response = client.post("/auth/login", data=body, content_type="application/json")
        assert_error(response, 413, "payload_too_large")

    @staticmethod
    def _post_streamed(client, path: str, body: bytes):
        """Chunked, as gunicorn passes such a body on: no Content-Length, and the server ends the stream."""
        return client.post(
            path,
            input_stream=io.BytesIO(body),
            headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
            environ_overrides={"wsgi.input_terminated": True},
        )

    def test_a_streamed_body_over_the_limit_is_413(self, client, make_user):
        make_user("alice")
        valid = f'{{"username": "alice", "password": "{PASSWORD}"}}'.encode()
        assert self._post_streamed(client, "/auth/login", valid).status_code == 200
        padded = valid + b" " * (2 * 1024 * 1024)  # still valid JSON: only its size is wrong
        assert_error(self._post_streamed(client, "/auth/login", padded), 413, "payload_too_large")

    def test_page_size_is_capped_at_100(self, client, user_headers):
        body = client.get("/api/v1/users?per_page=1000000", headers=user_headers).get_json()
        assert body["per_page"] == 100

    def test_deeply_nested_json_is_400(self, client):
        body = b'{"username": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        assert_error(client.post("/auth/login", data=body, content_type="application/json"), 400, "bad_request")

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
    def test_unbounded_input_is_refused(self, client, user_headers, method, path, body):
        response = getattr(client, method)(path, json=body, headers=user_headers)
        assert_error(response, 422, "validation_error")

    def test_login_register_and_refresh_are_rate_limited(self, app_with, make_user):
        make_user("alice")
        client = app_with(
            RATE_LIMIT_ENABLED=True,
            RATE_LIMIT_LOGIN="1 per minute",
            RATE_LIMIT_REGISTER="1 per minute",
            RATE_LIMIT_REFRESH="1 per minute",
        ).test_client()
        tokens = login(client, "alice")
        assert refresh(client, tokens["refresh_token"]).status_code == 200
        body = {"username": "newcomer", "email": "newcomer@example.com", "password": PASSWORD}
        assert client.post("/auth/register", json=body).status_code == 201

        for response in (
            attempt_login(client, "alice"),
            refresh(client, tokens["refresh_token"]),
            client.post("/auth/register", json={**body, "username": "second", "email": "second@example.com"}),
        ):
            assert_error(response, 429, "rate_limited")
            assert 0 < int(response.headers["Retry-After"]) <= 60
            assert response.headers["X-RateLimit-Limit"] == "1"


class TestSecurityHeaders:
    """API8:2023; V14.4.1, V14.4.3, V14.4.4, V14.4.6, V14.4.7, V8.1.1, V8.2.1."""

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
    def test_json_answers_carry_the_security_headers(self, client, method, path):
        headers = getattr(client, method)(path).headers
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Content-Security-Policy"] == JSON_CSP
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"

    @pytest.mark.parametrize("page", ["/docs", "/swagger", "/redoc"])
    def test_docs_pages_may_run_their_own_scripts_only(self, client, page):
        response = client.get(page)
        csp = response.headers["Content-Security-Policy"]
        assert response.headers["Content-Type"].startswith("text/html; charset=utf-8")
        assert csp.startswith("default-src 'none';") and "frame-ancestors 'none'" in csp
        assert not re.search(r"https?:|\*", csp)
        assert response.headers["X-Frame-Options"] == "DENY"

    def test_tokens_and_authenticated_answers_are_not_stored(self, client, make_user):
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


class TestCors:
    """API8:2023; V14.5.2, V14.5.3."""

    LISTED = "https://app.example"

    @pytest.fixture
    def listed(self, app_with):
        return app_with(CORS_ORIGINS=f"{self.LISTED}, https://admin.example", CORS_ALLOW_CREDENTIALS=True).test_client()

    def test_a_listed_origin_is_answered_exactly(self, listed):
        preflight = listed.options(
            "/api/v1/users",
            headers={
                "Origin": self.LISTED,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert preflight.headers["Access-Control-Allow-Origin"] == self.LISTED
        assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
        assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
        assert "Origin" in preflight.headers["Vary"]

    @pytest.mark.parametrize(
        "origin", ["https://evil.example", "null", "https://app.example.evil.example", "http://app.example"]
    )
    def test_other_origins_get_no_cors_headers(self, listed, origin):
        simple = listed.get("/api/v1/health/live", headers={"Origin": origin})
        preflight = listed.options(
            "/api/v1/users", headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"}
        )
        for response in (simple, preflight):
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Access-Control-Allow-Credentials" not in response.headers

    def test_an_allowed_origin_grants_no_access(self, listed):
        assert_error(listed.get("/api/v1/users/me", headers={"Origin": self.LISTED}), 401, "unauthorized")

    def test_the_default_wildcard_never_allows_credentials(self, client):
        response = client.get("/api/v1/health/live", headers={"Origin": "https://anywhere.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers

    def test_production_refuses_a_wildcard_with_credentials(self, database_url):
        settings = production_settings(database_url, CORS_ORIGINS="*", CORS_ALLOW_CREDENTIALS=True)
        with pytest.raises(ConfigError, match=r"^Configuration error: CORS_ORIGINS=\* together with"):
            create_app(settings)


class TestSecretsAtStart:
    """API8:2023; V2.10.4, V14.3.2."""

    @pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            (None, "is not set"),
            ("", "is not set"),
            ("your-secret-key-here", "is a well-known placeholder"),
            ("jwt-secret-key", "is a well-known placeholder"),
            ("ChangeMe", "is a well-known placeholder"),
            ("Zq8#pL2v" * 3 + "Zq8#pL2", "is shorter than 32 bytes"),
        ],
    )
    def test_production_refuses_unsafe_secrets_in_one_line(self, database_url, name, value, problem):
        with pytest.raises(ConfigError) as refused:
            create_app(production_settings(database_url, **{name: value}))
        message = str(refused.value)
        assert message.startswith(f"Configuration error: {name} {problem} (generate one with: python -c ")
        assert "\n" not in message
        assert not value or value not in message

    def test_production_refuses_debug(self, database_url):
        with pytest.raises(ConfigError) as refused:
            create_app(production_settings(database_url, DEBUG=True))
        assert str(refused.value) == "Configuration error: DEBUG must be off in production"

    def test_production_starts_with_strong_secrets(self, database_url):
        started = create_app(production_settings(database_url))
        assert started.config["JWT_SECRET_KEY"] == STRONG_JWT_SECRET and started.config["DEBUG"] is False

    def test_elsewhere_an_unset_key_becomes_a_random_one(self, app_with):
        development = app_with(FLASK_ENV="development", SECRET_KEY=None, JWT_SECRET_KEY=None)
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            key = development.config[name]
            assert len(key) >= 32 and key.lower() not in PLACEHOLDER_SECRETS
        assert development.config["SECRET_KEY"] != development.config["JWT_SECRET_KEY"]


class TestErrorLeakage:
    """API8:2023; V7.4.1, V7.4.3, V14.5.1."""

    GENERIC_500 = {"code": "internal_error", "message": "An unexpected error occurred.", "details": []}

    def test_an_unexpected_error_is_a_bare_500(self, app_with):
        crashing = app_with()

        @crashing.get("/crash")
        def crash():
            raise RuntimeError("SELECT password_hash FROM users -- at /srv/app/secret.py line 3")

        response = crashing.test_client().get("/crash")
        body = assert_error(response, 500, "internal_error")
        assert body["error"] == self.GENERIC_500

    def test_a_database_error_shows_no_sql_and_logs_no_values(self, app_with, make_user, capsys):
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
        assert body["error"] == self.GENERIC_500

        logged = capsys.readouterr().err
        assert "unhandled error" in logged and "IntegrityError" in logged
        assert row["email"] not in logged and row["password_hash"] not in logged

    def test_an_unreachable_database_is_a_503_that_names_nothing(self, app_with):
        address = dead_address()
        down = app_with(DATABASE_URL=f"postgresql://nobody@{address}/secretdb", DATABASE_CONNECT_TIMEOUT=2)
        response = down.test_client().post("/auth/login", json={"username": "alice", "password": PASSWORD})

        assert_error(response, 503, "service_unavailable")
        assert response.headers["Retry-After"] == "5"
        text = response.get_data(as_text=True).lower()
        for word in (address, address.split(":")[1], "secretdb", "nobody", "psycopg", "connection", "select"):
            assert word not in text

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
    def test_unknown_paths_and_methods_answer_in_the_envelope(self, client, method, path, status, code):
        response = client.open(path, method=method.upper())
        assert_error(response, status, code)
        assert "<" not in response.get_data(as_text=True)

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
    def test_refusals_never_echo_what_was_sent(self, client, path, body):
        response = client.post(path, json=body)
        assert_error(response, 422, "validation_error")
        assert "MARKER" not in response.get_data(as_text=True)


class TestLogs:
    """API8:2023; V7.1.1, V7.1.2, V8.3.1."""

    @pytest.fixture(params=["json", "console"])
    def logged(self, request, app_with, database_url, capsys):
        """A client of an app logging everything, SQL too, in each format to the captured stderr; and a reader."""
        client = app_with(LOG_FORMAT=request.param, LOG_LEVEL="DEBUG", LOG_SQL=True).test_client()
        yield client, lambda: capsys.readouterr().err
        configure_logging(load_settings(settings_for_tests(database_url)))  # back to the suite's logging

    def test_passwords_hashes_and_tokens_never_reach_the_logs(self, app, logged):
        client, read_logs = logged
        passwords = ["first passphrase 1", "wrong passphrase 2", "second passphrase 3"]
        body = {"username": "logme", "email": "logme@example.com", "password": passwords[0]}
        logme = client.post("/auth/register", json=body).get_json()["id"]
        attempt_login(client, "logme", passwords[1])
        first = login(client, "logme", passwords[0])
        client.get("/api/v1/users/me?token=in-the-query-string", headers=bearer(first["access_token"]))
        second = refresh(client, first["refresh_token"]).get_json()
        client.put(
            f"/api/v1/users/{logme}",
            json={"password": passwords[2], "current_password": passwords[0]},
            headers=bearer(second["access_token"]),
        )
        assert client.post("/auth/logout", headers=bearer(second["access_token"])).status_code == 204

        logs = read_logs()
        assert "/auth/logout" in logs and "UPDATE users" in logs  # the access and SQL lines were captured
        tokens = [pair[kind] for pair in (first, second) for kind in ("access_token", "refresh_token")]
        for secret in [*passwords, *tokens, get_user_row(app, logme).password_hash, "in-the-query-string"]:
            assert secret not in logs

    def test_a_crash_while_holding_a_password_does_not_log_it(self, logged, make_user, monkeypatch):
        client, read_logs = logged
        make_user("alice")

        def crash(**_kwargs):
            raise RuntimeError("token store broke")

        monkeypatch.setattr(auth_service, "issue_tokens", crash)
        assert_error(attempt_login(client, "alice"), 500, "internal_error")

        logs = read_logs()
        assert "token store broke" in logs  # the traceback is logged...
        assert PASSWORD not in logs  # ...without the local variables of its frames


class TestServerSideRequests:
    """API7:2023; V5.2.6, V12.6.1."""

    @pytest.fixture
    def with_nacos(self, app_with, nacos):
        return app_with(NACOS_ENABLED=True, NACOS_SERVER_ADDR=nacos.address).test_client()

    def test_a_service_name_reaches_nacos_as_one_parameter(self, with_nacos, nacos):
        name = "svc&namespaceId=private&groupName=ADMIN_GROUP#x?y=1"
        response = with_nacos.get(f"/monitoring/nacos/service/{quote(name, safe='')}/instances")

        assert response.status_code == 200 and response.get_json()["instances"] == []
        sent = nacos.requests_to("GET", "/instance/list")[-1].query
        assert (sent["serviceName"], sent["namespaceId"], sent["groupName"]) == (name, "public", "DEFAULT_GROUP")

    def test_a_service_name_cannot_choose_its_group(self, with_nacos, nacos):
        response = with_nacos.get(f"/monitoring/nacos/service/{quote('OTHER_GROUP@@svc')}/instances")
        assert_error(response, 422, "validation_error")
        assert nacos.requests_to("GET", "/instance/list") == []


class TestInventory:
    """API9:2023."""

    def test_every_route_served_is_documented(self, app, client):
        paths = client.get("/openapi.json").get_json()["paths"]
        documented = {(method, path) for path, operations in paths.items() for method in operations}
        assert set(served_operations(app)) == documented
