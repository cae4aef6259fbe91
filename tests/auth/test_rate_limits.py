"""Rate limits on /auth and on password checks: per client address, and budgets of password
guesses per account (app/auth/guesses.py); memory or Redis."""

import ipaddress
import uuid

import pytest
from limits import parse_many

from app.config import ConfigError, LimitSettings, load_settings
from tests.helpers import PASSWORD, REDIS_URL, assert_error, at_once, attempt_login, bearer, refresh


@pytest.fixture
def limited(app_with):
    """limited(**settings) -> a client of an app with rate limits on (each app starts a fresh memory store);
    the budgets of password guesses are the defaults unless given, and client addresses can be given
    as X-Forwarded-For."""

    def make(**overrides):
        settings = {"RATE_LIMIT_ENABLED": True, "RATE_LIMIT_LOGIN": "1000 per minute", "TRUSTED_PROXY_COUNT": 1}
        settings.update(overrides)
        return app_with(**settings).test_client()

    return make


def login_from(address: str, client, password=PASSWORD, username="alice"):
    return attempt_login(client, username, password, **{"X-Forwarded-For": address})


def test_too_many_logins_from_one_address_get_429_with_retry_after(limited, make_user):
    make_user("alice")
    client = limited(RATE_LIMIT_LOGIN="3 per minute")
    assert [attempt_login(client, "alice").status_code for _ in range(3)] == [200, 200, 200]

    response = attempt_login(client, "alice")

    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_guessing_at_one_account_does_not_lock_out_the_others(limited, make_user):
    make_user("alice")
    make_user("bob")
    client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute")

    assert [attempt_login(client, "alice", "wrong guess").status_code for _ in range(2)] == [401, 401]
    assert_error(
        attempt_login(client, "alice"), 429, "rate_limited"
    )  # alice's account is slowed down, right password or not
    assert attempt_login(client, "bob").status_code == 200  # bob is not


def test_the_account_limit_answers_alike_for_unknown_accounts(limited, make_user):
    make_user("alice")
    client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute")
    for name in ("alice", "nobody"):
        assert [attempt_login(client, name, "wrong guess").status_code for _ in range(3)] == [401, 401, 429]


def test_the_account_limit_counts_an_account_under_any_of_its_names(limited, make_user):
    make_user("alice")
    client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute")
    assert [attempt_login(client, "alice", "wrong guess").status_code for _ in range(2)] == [401, 401]
    # Logging in by email is the same account: its budget of guesses is already spent.
    assert_error(attempt_login(client, "alice@example.com", "wrong guess"), 429, "rate_limited")


def test_every_limit_of_the_account_setting_applies(limited, make_user):
    make_user("alice")
    client = limited(RATE_LIMIT_LOGIN_ACCOUNT="100 per minute;2 per hour")
    assert [attempt_login(client, "alice", "wrong guess").status_code for _ in range(3)] == [401, 401, 429]


def test_an_account_takes_at_most_100_failed_logins_an_hour_by_default():
    limits = parse_many(LimitSettings.model_fields["RATE_LIMIT_LOGIN_ACCOUNT"].default)
    assert min(limit.amount * 3600 / limit.get_expiry() for limit in limits) <= 100


def test_successful_logins_do_not_use_up_the_account_limit(limited, make_user):
    make_user("alice")
    client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute", RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS="2 per minute")
    assert [attempt_login(client, "alice").status_code for _ in range(5)] == [200] * 5


def test_guessing_from_one_address_is_slowed_down(limited, make_user):
    make_user("alice")
    client = limited()
    guesses = [login_from("203.0.113.9", client, "wrong guess").status_code for _ in range(5)]
    assert guesses == [401] * 5

    response = login_from("203.0.113.9", client)  # the right password too: it is not checked

    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_others_guessing_cannot_lock_the_owner_out(limited, make_user):
    make_user("alice")
    client = limited()
    assert login_from("198.51.100.1", client).status_code == 200  # where alice logs in from
    for _ in range(5):
        login_from("203.0.113.9", client, "wrong guess")
    assert_error(login_from("203.0.113.9", client, "wrong guess"), 429, "rate_limited")

    assert login_from("198.51.100.1", client).status_code == 200
    assert login_from("198.51.100.2", client).status_code == 200  # a new address of hers as well


def test_an_account_takes_at_most_100_guesses_an_hour_from_new_addresses(limited, make_user):
    make_user("alice")
    client = limited()
    assert login_from("198.51.100.1", client).status_code == 200  # one of the 100 checks: a new address then
    # 30 addresses, each within its own budget of 5 a minute: 150 guesses, of which the other 99 are checked.
    statuses = [login_from(f"203.0.113.{n}", client, "wrong guess").status_code for n in range(30) for _ in range(5)]
    assert statuses.count(401) == 99
    assert statuses.count(429) == 51

    assert_error(login_from("203.0.113.200", client), 429, "rate_limited")  # a new address waits, even alice's
    assert login_from("198.51.100.1", client).status_code == 200  # an address she logged in from does not


def test_parallel_guesses_cannot_overrun_the_budget(limited, make_user):
    make_user("alice")
    client = limited()
    statuses = at_once(20, lambda _: login_from("203.0.113.9", client, "wrong guess").status_code)
    assert sorted(statuses) == [401] * 5 + [429] * 15


def test_wrong_current_passwords_spend_the_login_budget(limited, make_user):
    alice = make_user("alice")
    client = limited()
    token = login_from("198.51.100.1", client).get_json()["access_token"]

    def change_email(address: str, current_password: str):
        body = {"email": "new@example.com", "current_password": current_password}
        headers = {**bearer(token), "X-Forwarded-For": address}
        return client.put(f"/api/v1/users/{alice}", json=body, headers=headers)

    # A stolen token is no password oracle: its guesses count as failed logins from where it is used.
    assert [change_email("203.0.113.9", "wrong guess").status_code for _ in range(5)] == [422] * 5
    assert_error(change_email("203.0.113.9", PASSWORD), 429, "rate_limited")
    assert_error(login_from("203.0.113.9", client), 429, "rate_limited")
    assert login_from("198.51.100.1", client).status_code == 200


def test_current_password_checks_are_limited_per_user(limited, make_user):
    alice = make_user("alice")
    client = limited(RATE_LIMIT_CURRENT_PASSWORD="2 per minute")
    headers = bearer(attempt_login(client, "alice").get_json()["access_token"])

    def change_email(number: int):
        body = {"email": f"alice{number}@example.com", "current_password": PASSWORD}
        return client.put(f"/api/v1/users/{alice}", json=body, headers=headers)

    assert [change_email(n).status_code for n in range(2)] == [200, 200]
    assert_error(change_email(3), 429, "rate_limited")
    # Changes that need no password check are not limited.
    assert client.put(f"/api/v1/users/{alice}", json={"username": "alice2"}, headers=headers).status_code == 200


def test_login_register_and_refresh_are_rate_limited(limited, make_user):
    make_user("alice")
    client = limited(
        RATE_LIMIT_LOGIN="1 per minute", RATE_LIMIT_REGISTER="1 per minute", RATE_LIMIT_REFRESH="1 per minute"
    )
    tokens = attempt_login(client, "alice").get_json()
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


def test_forwarded_addresses_count_only_behind_trusted_proxies(limited, make_user):
    make_user("alice")
    direct = limited(RATE_LIMIT_LOGIN="1 per minute", TRUSTED_PROXY_COUNT=0)
    assert attempt_login(direct, "alice", **{"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert_error(
        attempt_login(direct, "alice", **{"X-Forwarded-For": "203.0.113.2"}), 429, "rate_limited"
    )  # spoofing no help

    proxied = limited(RATE_LIMIT_LOGIN="1 per minute")
    assert attempt_login(proxied, "alice", **{"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert attempt_login(proxied, "alice", **{"X-Forwarded-For": "203.0.113.2"}).status_code == 200  # two clients
    assert_error(attempt_login(proxied, "alice", **{"X-Forwarded-For": "203.0.113.2"}), 429, "rate_limited")


def test_redis_shares_the_counts_between_workers_and_instances(limited, make_user):
    make_user("alice")
    options = {**redis_of_this_run(), "RATE_LIMIT_LOGIN": "2 per minute"}
    first, second = limited(**options), limited(**options)
    address = address_of_this_run()

    assert login_from(address, first).status_code == 200
    assert login_from(address, second).status_code == 200
    assert_error(login_from(address, first), 429, "rate_limited")


def test_redis_shares_the_budgets_of_guesses(limited, make_user):
    make_user("alice")
    options = {**redis_of_this_run(), "RATE_LIMIT_LOGIN_ACCOUNT": "3 per minute"}
    first, second = limited(**options), limited(**options)
    owners = address_of_this_run()
    assert login_from(owners, first).status_code == 200  # known to both from now on

    guesses = [login_from(address_of_this_run(), second, "wrong guess").status_code for _ in range(3)]
    assert guesses == [401, 401, 429]
    assert_error(login_from(address_of_this_run(), first, "wrong guess"), 429, "rate_limited")
    assert login_from(owners, second).status_code == 200


def redis_of_this_run() -> dict:
    """Settings for Redis, with a key prefix for the budgets of guesses that counts left in Redis by
    other runs (for the same user ids) cannot share."""
    return {"REDIS_URL": REDIS_URL, "NACOS_SERVICE_NAME": f"test-{uuid.uuid4()}"}


def address_of_this_run() -> str:
    """A client address of this run only, so that counts left in Redis by other runs do not matter."""
    return str(ipaddress.IPv6Address(uuid.uuid4().int))


def test_limits_hold_in_memory_when_redis_is_unreachable(limited, make_user, caplog):
    make_user("alice")
    client = limited(REDIS_URL="redis://127.0.0.1:9/0", RATE_LIMIT_LOGIN="2 per minute")
    assert [attempt_login(client, "alice").status_code for _ in range(2)] == [200, 200]
    assert_error(attempt_login(client, "alice"), 429, "rate_limited")
    guessed_at = limited(REDIS_URL="redis://127.0.0.1:9/0")
    guesses = [login_from("203.0.113.9", guessed_at, "wrong guess").status_code for _ in range(6)]
    assert guesses == [401] * 5 + [429]
    assert any("memory" in record.getMessage().lower() for record in caplog.records)


def test_an_invalid_limit_stops_the_start_naming_it():
    with pytest.raises(ConfigError, match="RATE_LIMIT_LOGIN"):
        load_settings({"RATE_LIMIT_LOGIN": "lots"})
