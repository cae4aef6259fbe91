"""Rate limits on /auth: per client address, per account for failed logins; memory or Redis."""

import ipaddress
import os
import uuid

import pytest

from app import create_app
from app.config import ConfigError, load_settings
from tests.helpers import PASSWORD, assert_error, settings_for_tests

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def limited(app, database_url):
    """limited(**settings) -> a client of an app with rate limits on (each app starts a fresh memory store)."""

    def make(**overrides):
        settings = {
            "RATE_LIMIT_ENABLED": True,
            "RATE_LIMIT_LOGIN": "100 per minute",
            "RATE_LIMIT_LOGIN_ACCOUNT": "100 per minute",
            **overrides,
        }
        return create_app(settings_for_tests(database_url, **settings)).test_client()

    return make


def login(client, username="alice", password=PASSWORD, **headers):
    return client.post("/auth/login", json={"username": username, "password": password}, headers=headers)


def test_too_many_logins_from_one_address_get_429_with_retry_after(limited, make_user):
    make_user("alice")
    client = limited(RATE_LIMIT_LOGIN="3 per minute")
    assert [login(client).status_code for _ in range(3)] == [200, 200, 200]

    response = login(client)

    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_guessing_at_one_account_does_not_lock_out_the_others(limited, make_user):
    make_user("alice")
    make_user("bob")
    client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute")

    assert [login(client, password="wrong guess").status_code for _ in range(2)] == [401, 401]
    assert_error(login(client), 429, "rate_limited")  # alice's account is slowed down, right password or not
    assert login(client, "bob").status_code == 200  # bob is not


def test_successful_logins_do_not_use_up_the_account_limit(limited, make_user):
    make_user("alice")
    client = limited(RATE_LIMIT_LOGIN_ACCOUNT="2 per minute")
    assert [login(client).status_code for _ in range(5)] == [200] * 5


def test_register_and_refresh_are_limited(limited, make_user):
    client = limited(RATE_LIMIT_REGISTER="2 per minute", RATE_LIMIT_REFRESH="1 per minute")
    for index in range(2):
        body = {"username": f"user{index}", "email": f"user{index}@example.com", "password": PASSWORD}
        assert client.post("/auth/register", json=body).status_code == 201
    body = {"username": "user9", "email": "user9@example.com", "password": PASSWORD}
    assert_error(client.post("/auth/register", json=body), 429, "rate_limited")

    refresh = login(client, "user0").get_json()["refresh_token"]
    assert client.post("/auth/refresh", headers={"Authorization": f"Bearer {refresh}"}).status_code == 200
    assert_error(client.post("/auth/refresh", headers={"Authorization": f"Bearer {refresh}"}), 429, "rate_limited")


def test_forwarded_addresses_count_only_behind_trusted_proxies(limited, make_user):
    make_user("alice")
    direct = limited(RATE_LIMIT_LOGIN="1 per minute")
    assert login(direct, **{"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert_error(login(direct, **{"X-Forwarded-For": "203.0.113.2"}), 429, "rate_limited")  # spoofing no help

    proxied = limited(RATE_LIMIT_LOGIN="1 per minute", TRUSTED_PROXY_COUNT=1)
    assert login(proxied, **{"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert login(proxied, **{"X-Forwarded-For": "203.0.113.2"}).status_code == 200  # two clients
    assert_error(login(proxied, **{"X-Forwarded-For": "203.0.113.2"}), 429, "rate_limited")


def test_redis_shares_the_counts_between_workers_and_instances(limited, make_user):
    make_user("alice")
    # A client address of this run only, so that counts left in Redis by other runs do not matter.
    client_address = {"X-Forwarded-For": str(ipaddress.IPv6Address(uuid.uuid4().int))}
    options = {"REDIS_URL": REDIS_URL, "RATE_LIMIT_LOGIN": "2 per minute", "TRUSTED_PROXY_COUNT": 1}
    first, second = limited(**options), limited(**options)

    assert login(first, **client_address).status_code == 200
    assert login(second, **client_address).status_code == 200
    assert_error(login(first, **client_address), 429, "rate_limited")


def test_limits_hold_in_memory_when_redis_is_unreachable(limited, make_user, caplog):
    make_user("alice")
    client = limited(REDIS_URL="redis://127.0.0.1:9/0", RATE_LIMIT_LOGIN="2 per minute")
    assert [login(client).status_code for _ in range(2)] == [200, 200]
    assert_error(login(client), 429, "rate_limited")
    assert any("memory" in record.getMessage().lower() for record in caplog.records)


def test_an_invalid_limit_stops_the_start_naming_it():
    with pytest.raises(ConfigError, match="RATE_LIMIT_LOGIN"):
        load_settings({"RATE_LIMIT_LOGIN": "lots"})
