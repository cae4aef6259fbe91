"""The Nacos client against the fake server: shape of requests, API detection, auth, failover."""

import json
import time

import pytest

from app.nacos.client import NacosError, NacosUnavailable
from tests.nacos.fake_nacos import FakeNacos
from tests.nacos.helpers import dead_address, make_client, make_registration


def test_registration_sends_every_identity_field_and_no_none_cluster(nacos):
    make_client(nacos.address).register(make_registration(metadata={"version": "1.2.3"}))

    sent = nacos.requests_to("POST", "/nacos/v1/ns/instance")[-1].params
    assert sent["clusterName"] == "DEFAULT" and "None" not in sent.values()
    assert (sent["serviceName"], sent["groupName"], sent["namespaceId"]) == ("flask-api", "DEFAULT_GROUP", "public")
    assert (sent["ip"], sent["port"], sent["ephemeral"], sent["weight"]) == ("127.0.0.1", "5000", "true", "1.0")
    assert json.loads(sent["metadata"]) == {"version": "1.2.3"}
    assert [(i.ip, i.port, i.cluster) for i in nacos.hosts("flask-api")] == [("127.0.0.1", 5000, "DEFAULT")]


def test_deregistration_removes_the_instance_and_is_idempotent(nacos):
    client = make_client(nacos.address)
    client.register(make_registration())
    client.deregister(make_registration())
    client.deregister(make_registration())
    assert nacos.hosts("flask-api") == []


def test_v1_heartbeat_carries_the_full_beat_and_reads_the_interval(nacos):
    nacos.beat_interval_ms = 1234
    client = make_client(nacos.address)
    client.register(make_registration())

    beat = client.heartbeat(make_registration())

    assert beat.known and beat.interval == 1.234
    sent = nacos.requests_to("PUT", "/instance/beat")[-1].params
    assert sent["serviceName"] == "DEFAULT_GROUP@@flask-api" and sent["clusterName"] == "DEFAULT"
    assert json.loads(sent["beat"])["cluster"] == "DEFAULT"


def test_heartbeat_after_a_restart_says_unknown(nacos):
    client = make_client(nacos.address)
    client.register(make_registration())
    nacos.restart()
    assert client.heartbeat(make_registration()).known is False


@pytest.mark.parametrize(("version", "api"), [("2.x", "v1"), ("3.1", "v1"), ("3.2", "v3")])
def test_api_is_detected_from_the_server(version, api):
    fake = FakeNacos(version=version).start()
    try:
        client = make_client(fake.address)
        registration = make_registration()
        client.register(registration)
        assert client.api == api
        assert client.heartbeat(registration).known
        assert [i.port for i in client.list_instances("flask-api", group="DEFAULT_GROUP", healthy_only=True)[0]] == [
            5000
        ]
        fake.restart()
        assert client.heartbeat(registration).known is False
        client.register(registration)
        client.deregister(registration)
        assert fake.hosts("flask-api") == []
    finally:
        fake.stop()


def test_a_server_upgraded_to_v3_only_is_detected_again(nacos):
    client = make_client(nacos.address)
    client.register(make_registration())
    assert client.api == "v1"

    nacos.version = "3.2"
    nacos.restart()
    assert client.heartbeat(make_registration()).known is False
    client.register(make_registration())

    assert client.api == "v3" and nacos.hosts("flask-api")


def test_forcing_v1_on_a_v3_only_server_is_a_clear_error():
    fake = FakeNacos(version="3.2").start()
    try:
        with pytest.raises(NacosError, match="NACOS_API"):
            make_client(fake.address, api="v1").register(make_registration())
    finally:
        fake.stop()


def test_list_reports_cache_time_and_healthy_filter(nacos):
    nacos.cache_millis = 3000
    client = make_client(nacos.address)
    client.register(make_registration(port=1))
    client.register(make_registration(port=2))
    nacos.instances[next(k for k in nacos.instances if k[-1] == 2)].healthy = False

    healthy, cache_seconds = client.list_instances("flask-api", group="DEFAULT_GROUP", healthy_only=True)
    everyone, _ = client.list_instances("flask-api", group="DEFAULT_GROUP", healthy_only=False)

    assert [i.port for i in healthy] == [1] and cache_seconds == 3.0
    assert sorted(i.port for i in everyone) == [1, 2]


def test_failover_to_the_next_address_and_staying_there(nacos):
    client = make_client(dead_address(), nacos.address)
    client.register(make_registration())
    assert client.server == f"http://{nacos.address}"
    assert nacos.hosts("flask-api")


def test_no_address_answering_is_unavailable():
    with pytest.raises(NacosUnavailable):
        make_client(dead_address(), dead_address()).register(make_registration())


@pytest.mark.parametrize("version", ["2.x", "3.2"])
def test_auth_logs_in_with_the_password_in_the_body_and_sends_the_token_in_headers(version):
    fake = FakeNacos(version=version, credentials=("nacos", "s3cret-pass")).start()
    try:
        make_client(fake.address, username="nacos", password="s3cret-pass").register(make_registration())
        assert fake.hosts("flask-api")
        for request in fake.received:
            assert "s3cret-pass" not in request.url
            assert "accessToken" not in request.url  # the token travels in headers, out of access logs
        assert fake.requests_to("POST", "/instance")[-1].headers["Authorization"].startswith("Bearer ")
        logins = [r for r in fake.received if "login" in r.path and r.form.get("password") == "s3cret-pass"]
        assert logins
    finally:
        fake.stop()


def test_wrong_credentials_are_an_error():
    fake = FakeNacos(credentials=("nacos", "right")).start()
    try:
        with pytest.raises(NacosError, match="login refused"):
            make_client(fake.address, username="nacos", password="wrong").register(make_registration())
    finally:
        fake.stop()


def test_token_is_renewed_before_it_expires():
    fake = FakeNacos(credentials=("nacos", "pw"), token_ttl=0.5).start()
    try:
        client = make_client(fake.address, username="nacos", password="pw")
        client.register(make_registration())
        time.sleep(0.45)  # past 80% of the TTL: the client logs in again before the server would refuse

        assert client.heartbeat(make_registration()).known
        assert len(fake.requests_to("POST", "/nacos/v1/auth/login")) == 2
    finally:
        fake.stop()


def test_a_403_logs_in_again_once(nacos):
    nacos.credentials = ("nacos", "pw")
    client = make_client(nacos.address, username="nacos", password="pw")
    client.register(make_registration())
    nacos.revoke_tokens()  # e.g. the server restarted with a new secret

    assert client.heartbeat(make_registration()).known
    assert len(nacos.requests_to("POST", "/nacos/v1/auth/login")) == 2
    assert len(nacos.requests_to("POST", "/nacos/v3/auth/user/login")) == 1  # 2.x has none: asked once


def test_naming_behind_a_context_path():
    fake = FakeNacos(context_path="/registry/nacos").start()
    try:
        make_client(fake.address, context_path="/registry/nacos").register(make_registration())
        assert fake.hosts("flask-api")
        assert all(r.url.startswith("/registry/nacos/") for r in fake.received)
    finally:
        fake.stop()
