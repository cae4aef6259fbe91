"""The configuration half of the Nacos client against the fake server: reads, the long-poll
listener, the 2.x public-namespace trap, auth, the context path, and the snapshot/failover files."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from pydantic import ValidationError

from app.nacos.client import NacosError, NacosUnavailable
from app.nacos.config_files import ConfigFiles
from app.nacos.config_types import ConfigKey
from app.nacos.registrar import client_from_settings
from app.nacos.settings import NacosSettings
from tests.nacos.fake_nacos import FakeNacos
from tests.nacos.helpers import dead_address, make_client

YAML = "log:\n  level: DEBUG\n# é, to check the encoding\n"
KEY = ConfigKey("flask-api.yaml", "DEFAULT_GROUP")
VERSIONS = [("2.x", "v1"), ("3.1", "v1"), ("3.2", "v3")]


@pytest.fixture(params=VERSIONS, ids=[v for v, _ in VERSIONS])
def server(request):
    fake = FakeNacos(version=request.param[0], listener_hold=0.5).start()
    yield fake, request.param[1]
    fake.stop()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def test_reads_a_config_with_the_servers_md5_and_type(server):
    fake, api = server
    fake.publish("flask-api.yaml", YAML)
    client = make_client(fake.address)

    content = client.get_config(KEY)

    assert client.api == api
    assert (content.key, content.content, content.md5, content.type) == (KEY, YAML, md5(YAML), "yaml")
    assert content.origin == "server" and abs(content.last_modified - time.time()) < 5


def test_an_absent_config_is_none_with_an_empty_md5(server):
    fake, _ = server
    content = make_client(fake.address).get_config(KEY)
    assert (content.content, content.md5, content.type) == (None, "", None)


def test_public_namespace_reads_send_no_tenant(nacos):
    nacos.publish("flask-api.yaml", YAML)
    make_client(nacos.address).get_config(KEY)
    assert "tenant" not in nacos.requests_to("GET", "/v1/cs/configs")[-1].query


def test_another_namespace_is_read_from_it():
    fake = FakeNacos().start()
    try:
        fake.publish("flask-api.yaml", "a: 1\n", namespace="dev")
        fake.publish("flask-api.yaml", "a: 2\n")
        client = make_client(fake.address)
        client.namespace = "dev"
        assert client.get_config(KEY).content == "a: 1\n"
        assert fake.requests_to("GET", "/v1/cs/configs")[-1].query["tenant"] == "dev"
    finally:
        fake.stop()


def test_a_config_being_written_is_read_again(nacos):
    nacos.publish("flask-api.yaml", YAML)
    nacos.busy_reads = 1
    assert make_client(nacos.address).get_config(KEY).content == YAML
    assert len(nacos.requests_to("GET", "/v1/cs/configs")) == 2


def test_an_unreachable_server_is_unavailable():
    with pytest.raises(NacosUnavailable):
        make_client(dead_address()).get_config(KEY)


def test_listen_answers_at_once_on_a_change(nacos):
    fake = FakeNacos(listener_hold=5).start()
    try:
        fake.publish("flask-api.yaml", YAML)
        client = make_client(fake.address)
        known = {KEY: client.get_config(KEY).md5, ConfigKey("other", "DEFAULT_GROUP"): ""}
        threading.Timer(0.3, fake.publish, args=("flask-api.yaml", "log:\n  level: INFO\n")).start()

        started = time.monotonic()
        changed = client.listen(known, hold_seconds=30)

        assert changed == [KEY] and time.monotonic() - started < 3
        listener = fake.requests_to("POST", "/v1/cs/configs/listener")[-1]
        assert listener.headers["Long-Pulling-Timeout"] == "30000"
        assert listener.form["Listening-Configs"] == (
            f"flask-api.yaml\x02DEFAULT_GROUP\x02{md5(YAML)}\x01other\x02DEFAULT_GROUP\x02\x01"
        )
    finally:
        fake.stop()


def test_listen_is_held_and_answers_empty_when_nothing_changes():
    fake = FakeNacos(listener_hold=0.5).start()
    try:
        fake.publish("flask-api.yaml", YAML)
        started = time.monotonic()
        assert make_client(fake.address).listen({KEY: md5(YAML)}) == []
        assert time.monotonic() - started >= 0.45
    finally:
        fake.stop()


def test_listen_reports_a_config_created_or_removed(nacos):
    client = make_client(nacos.address)
    nacos.publish("flask-api.yaml", YAML)
    assert client.listen({KEY: ""}, hold_seconds=1) == [KEY]
    nacos.remove("flask-api.yaml")
    assert client.listen({KEY: md5(YAML)}, hold_seconds=1) == [KEY]


def test_the_2x_public_namespace_trap_is_avoided():
    """The 2.x listener reports tenant=public changed on every poll: the client sends no tenant."""
    fake = FakeNacos(version="2.x", listener_hold=0.3).start()
    try:
        fake.publish("flask-api.yaml", YAML)
        client = make_client(fake.address)
        client.namespace = "public"
        assert client.listen({KEY: md5(YAML)}) == []
        # The trap is real in the fake: the same poll with tenant=public is "changed".
        trapped = f"flask-api.yaml\x02DEFAULT_GROUP\x02{md5(YAML)}\x02public\x01"
        reply = client._send(
            "POST",
            "/nacos/v1/cs/configs/listener",
            {"Listening-Configs": trapped},
            headers={"Long-Pulling-Timeout": "30000"},
        )
        assert reply.text == "flask-api.yaml%02DEFAULT_GROUP%02public%01"
    finally:
        fake.stop()


def test_listen_in_another_namespace_names_the_tenant():
    fake = FakeNacos(listener_hold=0.3).start()
    try:
        client = make_client(fake.address)
        client.namespace = "dev"
        fake.publish("flask-api.yaml", YAML, namespace="dev")
        assert client.listen({KEY: ""}) == [KEY]
        assert fake.requests_to("POST", "/listener")[-1].form["Listening-Configs"].endswith("\x02dev\x01")
    finally:
        fake.stop()


def test_listen_on_a_server_without_listener_says_so():
    fake = FakeNacos(version="3.2").start()
    try:
        assert make_client(fake.address).listen({KEY: ""}) is None
        assert not fake.requests_to("POST", "/listener")
    finally:
        fake.stop()


def test_a_server_upgraded_to_v3_only_is_read_through_v3(nacos):
    nacos.publish("flask-api.yaml", YAML)
    client = make_client(nacos.address)
    assert client.get_config(KEY).content == YAML and client.api == "v1"

    nacos.version = "3.2"

    assert client.get_config(KEY).content == YAML and client.api == "v3"
    assert client.listen({KEY: md5(YAML)}) is None


@pytest.mark.parametrize("version", ["2.x", "3.2"])
def test_auth_with_token_renewal_and_the_token_never_in_a_url(version):
    fake = FakeNacos(version=version, credentials=("nacos", "pw"), token_ttl=0.5, listener_hold=0.2).start()
    try:
        fake.publish("flask-api.yaml", YAML)
        client = make_client(fake.address, username="nacos", password="pw")
        assert client.get_config(KEY).content == YAML
        time.sleep(0.45)  # past 80% of the TTL: the next call logs in again
        assert client.get_config(KEY).content == YAML
        fake.revoke_tokens()  # a 403: logged in again once
        assert client.get_config(KEY).content == YAML
        client.listen({KEY: md5(YAML)})

        logins = [r for r in fake.received if "login" in r.path and r.form.get("password") == "pw"]
        assert len(logins) == 3 + (version == "2.x")  # 2.x: the v3 login asked once too (404)
        for request in fake.received:
            assert "accessToken" not in request.url and "pw" not in request.url
        assert fake.received[-1].headers["Authorization"].startswith("Bearer ")
    finally:
        fake.stop()


def test_a_403_without_credentials_is_an_error():
    fake = FakeNacos(credentials=("nacos", "pw")).start()
    try:
        with pytest.raises(NacosError, match="403"):
            make_client(fake.address).get_config(KEY)
    finally:
        fake.stop()


@pytest.mark.parametrize("version", ["2.x", "3.2"])
def test_a_server_behind_a_context_path(version):
    fake = FakeNacos(version=version, context_path="/registry/nacos", listener_hold=0.2).start()
    try:
        fake.publish("flask-api.yaml", YAML)
        client = make_client(fake.address, context_path="/registry/nacos")
        assert client.get_config(KEY).content == YAML
        client.listen({KEY: md5(YAML)})
        assert all(r.url.startswith("/registry/nacos/") for r in fake.received)
        with pytest.raises(NacosError):
            make_client(fake.address).get_config(KEY)  # /nacos is not served there
    finally:
        fake.stop()


# -- the fake's own protocol details that the client does not exercise ----------------------


def test_fake_v1_read_errors(nacos):
    client = make_client(nacos.address)
    assert client._send("GET", "/nacos/v1/cs/configs", {"dataId": "x"}).status_code == 500
    assert client._send("GET", "/nacos/v1/cs/configs", {"dataId": "a/b", "group": "G"}).status_code == 400
    absent = client._send("GET", "/nacos/v1/cs/configs", {"dataId": "x", "group": "G"})
    assert (absent.status_code, absent.text) == (404, "config data not exist")


def test_fake_v3_read_errors_are_plain_text():
    fake = FakeNacos(version="3.2").start()
    try:
        reply = make_client(fake.address)._send("GET", "/nacos/v3/client/cs/config", {"dataId": "x"})
        assert reply.status_code == 400 and not reply.text.startswith("{")
    finally:
        fake.stop()


def test_fake_publish_over_http(nacos):
    client = make_client(nacos.address)
    form = {"dataId": "flask-api.properties", "group": "DEFAULT_GROUP", "content": "a=1", "type": "properties"}
    assert client._send("POST", "/nacos/v1/cs/configs", form).text == "true"
    content = client.get_config(ConfigKey("flask-api.properties", "DEFAULT_GROUP"))
    assert (content.content, content.type) == ("a=1", "properties")


# -- snapshot and failover files -----------------------------------------------------------


def test_files_use_the_java_clients_layout(tmp_path):
    public = ConfigFiles(tmp_path, server="127.0.0.1:8848", namespace="public")
    dev = ConfigFiles(tmp_path, server="127.0.0.1:8848", namespace="dev")
    public.save_snapshot(KEY, YAML)
    dev.save_snapshot(KEY, "dev")

    base = tmp_path / "nacos" / "config" / "127.0.0.1_8848_nacos"
    assert (base / "snapshot" / "DEFAULT_GROUP" / "flask-api.yaml").read_text(encoding="utf-8") == YAML
    assert (base / "snapshot-tenant" / "dev" / "DEFAULT_GROUP" / "flask-api.yaml").read_text() == "dev"
    assert public.snapshot(KEY) == YAML and dev.snapshot(KEY) == "dev"
    assert [p.name for p in (base / "snapshot" / "DEFAULT_GROUP").iterdir()] == ["flask-api.yaml"]  # no temp left

    public.drop_snapshot(KEY)
    public.drop_snapshot(KEY)
    assert public.snapshot(KEY) is None

    assert public.failover(KEY) is None
    failover = base / "data" / "config-data" / "DEFAULT_GROUP" / "flask-api.yaml"
    failover.parent.mkdir(parents=True)
    failover.write_text("operator: yes\n")
    assert public.failover(KEY) == "operator: yes\n"
    assert dev.failover(KEY) is None


def test_file_names_cannot_escape_the_root(tmp_path):
    files = ConfigFiles(tmp_path, server="nacos:8848", namespace="public")
    for key in (ConfigKey("../x", "G"), ConfigKey("x", ".."), ConfigKey("a/b", "G")):
        with pytest.raises(ValueError, match="cannot name"):
            files.save_snapshot(key, "x")
    with pytest.raises(ValueError):
        ConfigFiles(tmp_path, server="nacos:8848", namespace="../etc")


@pytest.mark.parametrize("context_path", ["/registry/nacos", "/"], ids=["a prefix", "the root"])
def test_the_settings_context_path_reaches_the_client(context_path):
    fake = FakeNacos(context_path=context_path).start()
    try:
        settings = NacosSettings(_env_file=None, NACOS_SERVER_ADDR=[fake.address], NACOS_CONTEXT_PATH=context_path)
        fake.publish("flask-api.yaml", YAML)
        assert client_from_settings(settings).get_config(KEY).content == YAML
    finally:
        fake.stop()


@pytest.mark.parametrize("context_path", ["nacos", "/nacos/", "//", "/na cos"])
def test_a_context_path_that_is_no_path_is_refused(context_path):
    with pytest.raises(ValidationError, match="NACOS_CONTEXT_PATH"):
        NacosSettings(_env_file=None, NACOS_CONTEXT_PATH=context_path)


def test_a_held_long_poll_is_cut_off_when_the_server_goes_down():
    fake = FakeNacos(listener_hold=10).start()
    try:
        threading.Timer(0.3, fake.stop).start()
        started = time.monotonic()
        with pytest.raises(NacosUnavailable):
            make_client(fake.address).listen({KEY: ""}, hold_seconds=30)
        assert time.monotonic() - started < 3
    finally:
        fake.stop()
