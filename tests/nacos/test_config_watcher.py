"""The configuration from Nacos at start, watched by one process, followed by every worker: against
the fake Nacos (tests/nacos/fake_nacos.py) and the snapshot/failover files in a temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import subprocess
import sys
import time

import pytest
import requests

from app.config import load_settings
from app.extensions import SETTINGS
from app.nacos import config
from app.nacos.config_files import ConfigFiles
from app.nacos.config_follower import ConfigFollower
from app.nacos.config_types import ConfigContent, ConfigKey
from app.nacos.config_watcher import ConfigPublisher, ConfigWatcher, initial_contents
from app.nacos.registrar import Registrar
from app.nacos.state import publish_config_state, read_config_state
from tests.nacos.fake_nacos import FakeNacos
from tests.nacos.helpers import dead_address, make_client, make_registration, wait_for
from tests.processes import BIN, ROOT, free_port, gunicorn, service_environment, serving

KEY = ConfigKey("flask-api.yaml", "DEFAULT_GROUP")
ABSENT = ConfigContent(KEY, None, "", None, None, origin="absent")


@pytest.fixture(autouse=True)
def _root_level_and_app_values_restored():
    # The watcher and the followers set the process's log level, as LOG_LEVEL says, and the
    # application's own values.
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)
    config.reset()


@pytest.fixture
def files(tmp_path, nacos):
    return ConfigFiles(tmp_path / "cache", server=nacos.address, namespace="public")


def place_failover(root, server: str, key: ConfigKey, text: str) -> None:
    """As an operator does, by hand, in the Java client's layout."""
    directory = root / "nacos" / "config" / f"{server.replace(':', '_')}_nacos" / "data" / "config-data" / key.group
    directory.mkdir(parents=True)
    (directory / key.data_id).write_text(text)


def contents_of(nacos: FakeNacos, files: ConfigFiles) -> list[ConfigContent]:
    return initial_contents([KEY], client=make_client(nacos.address), files=files, timeout=3)[0]


# -- the start -----------------------------------------------------------------------------------


def test_start_reads_the_server_and_keeps_a_snapshot(nacos, files):
    nacos.publish(KEY.data_id, "LOG_LEVEL: DEBUG\n")
    contents, api = initial_contents([KEY], client=make_client(nacos.address), files=files, timeout=3)
    assert (contents[0].content, contents[0].origin, api) == ("LOG_LEVEL: DEBUG\n", "server", "v1")
    assert files.snapshot(KEY) == "LOG_LEVEL: DEBUG\n"


def test_an_absent_config_drops_its_snapshot(nacos, files):
    files.save_snapshot(KEY, "LOG_LEVEL: DEBUG\n")
    contents, _api = initial_contents([KEY], client=make_client(nacos.address), files=files, timeout=3)
    assert contents[0].content is None and files.snapshot(KEY) is None


def test_start_with_nacos_down_uses_the_snapshot(files, caplog):
    files.save_snapshot(KEY, "LOG_LEVEL: DEBUG\n")
    contents, api = initial_contents([KEY], client=make_client(dead_address()), files=files, timeout=3)
    assert (contents[0].content, contents[0].origin, api) == ("LOG_LEVEL: DEBUG\n", "snapshot", None)
    assert "nacos unreachable at start" in caplog.text


def test_start_with_nacos_down_and_no_snapshot_warns_once(files, caplog):
    keys = [KEY, ConfigKey("flask-api-production.yaml", "DEFAULT_GROUP")]
    started = time.monotonic()
    contents, _api = initial_contents(keys, client=make_client(dead_address()), files=files, timeout=3)
    assert time.monotonic() - started < 1
    assert [content.origin for content in contents] == ["absent", "absent"]
    assert caplog.text.count("starting on the local settings alone") == 1


def test_a_start_waits_no_longer_than_its_timeout_on_a_server_that_never_answers(files, caplog):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        files.save_snapshot(KEY, "LOG_LEVEL: DEBUG\n")
        client = make_client(f"127.0.0.1:{silent.getsockname()[1]}")  # a 2 s read timeout
        started = time.monotonic()
        contents, api = initial_contents([KEY], client=client, files=files, timeout=0.5)
        assert time.monotonic() - started < 1
    assert (contents[0].origin, api) == ("snapshot", None)
    assert "nacos did not answer in time at start" in caplog.text


def test_a_failover_file_wins_over_the_server(tmp_path, nacos, files):
    nacos.publish(KEY.data_id, "LOG_LEVEL: DEBUG\n")
    place_failover(tmp_path / "cache", nacos.address, KEY, "LOG_LEVEL: ERROR\n")
    contents, _api = initial_contents([KEY], client=make_client(nacos.address), files=files, timeout=3)
    assert (contents[0].content, contents[0].origin) == ("LOG_LEVEL: ERROR\n", "failover")
    assert nacos.requests_to("GET", "/v1/cs/configs") == []


# -- validating and publishing -------------------------------------------------------------------


@pytest.fixture
def publisher(tmp_path):
    return ConfigPublisher(directory=tmp_path, local=load_settings({}))


def test_a_bad_change_is_refused_whole_and_a_corrected_one_applied(tmp_path, nacos, files, publisher, caplog):
    nacos.publish(KEY.data_id, "LOG_LEVEL: WARNING\nCORS_ORIGINS: https://a.example\n")
    assert publisher.publish(contents_of(nacos, files), at_start=True).logging.LOG_LEVEL == "WARNING"

    nacos.publish(KEY.data_id, "log: [unclosed\n")
    assert publisher.publish(contents_of(nacos, files)) is None
    state = read_config_state(tmp_path)
    assert state["version"] == 1 and state["settings"]["LOG_LEVEL"] == "WARNING"
    assert state["rejected"]["key"] == str(KEY)

    nacos.publish(KEY.data_id, "LOG_LEVEL: verbose\nJWT_SECRET_KEY: s3cret-value-never-logged\n")
    assert publisher.publish(contents_of(nacos, files)) is None
    rejected = read_config_state(tmp_path)["rejected"]
    assert (rejected["key"], rejected["setting"]) == (str(KEY), "LOG_LEVEL")
    assert "configuration from nacos refused" in caplog.text and "s3cret" not in caplog.text

    nacos.publish(KEY.data_id, "LOG_LEVEL: ERROR\n")
    assert publisher.publish(contents_of(nacos, files)).logging.LOG_LEVEL == "ERROR"
    state = read_config_state(tmp_path)
    assert (state["version"], state["rejected"], state["settings"]) == (2, None, {"LOG_LEVEL": "ERROR"})


def test_a_non_live_change_is_pending(tmp_path, nacos, files, publisher, caplog):
    nacos.publish(KEY.data_id, "LOG_LEVEL: WARNING\n")
    publisher.publish(contents_of(nacos, files), at_start=True)
    nacos.publish(KEY.data_id, "LOG_LEVEL: ERROR\ngunicorn:\n  timeout: 99\n")
    publisher.publish(contents_of(nacos, files))
    assert read_config_state(tmp_path)["pending"] == ["GUNICORN_TIMEOUT"]
    assert "takes effect at the next restart" in caplog.text


def test_the_environment_shadowing_a_nacos_value_is_said_at_start(tmp_path, nacos, files, monkeypatch, caplog):
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    nacos.publish(KEY.data_id, "LOG_LEVEL: DEBUG\n")
    settings = ConfigPublisher(directory=tmp_path, local=load_settings({})).publish(
        contents_of(nacos, files), at_start=True
    )
    assert settings.logging.LOG_LEVEL == "ERROR"
    assert "the environment overrides these Nacos values" in caplog.text


# -- watching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "api"), [("2.x", "v1"), ("3.2", "v3")], ids=["long-poll", "v3-polling"])
def test_the_watcher_publishes_a_change(tmp_path, version, api, publisher):
    nacos = FakeNacos(version=version, listener_hold=5).start()
    try:
        files = ConfigFiles(tmp_path / "cache", server=nacos.address, namespace="public")
        nacos.publish(KEY.data_id, "LOG_LEVEL: WARNING\n")
        client = make_client(nacos.address)
        contents = contents_of(nacos, files)
        publisher.publish(contents, at_start=True)
        updated = []
        watcher = ConfigWatcher(
            client=client,
            files=files,
            publisher=publisher,
            contents=contents,
            poll_seconds=0.5,
            on_registration_change=updated.append,
        )
        watcher.start()
        try:
            time.sleep(0.2)
            nacos.publish(KEY.data_id, "LOG_LEVEL: ERROR\nNACOS_WEIGHT: 3\n")
            started = time.monotonic()
            wait_for(lambda: read_config_state(tmp_path)["version"] == 2, timeout=3)
            assert time.monotonic() - started < (0.5 if api == "v1" else 1.0)
            assert updated and updated[0].nacos.NACOS_WEIGHT == 3
            assert read_config_state(tmp_path)["api"] == api
            assert files.snapshot(KEY) == "LOG_LEVEL: ERROR\nNACOS_WEIGHT: 3\n"
        finally:
            watcher.stop()
    finally:
        nacos.stop()


def test_the_watcher_keeps_trying_while_nacos_is_away(tmp_path, publisher):
    files = ConfigFiles(tmp_path / "cache", server="127.0.0.1:1", namespace="public")
    client = make_client(dead_address())
    watcher = ConfigWatcher(client=client, files=files, publisher=publisher, contents=[ABSENT], poll_seconds=0.2)
    watcher.start()
    try:
        wait_for(lambda: watcher.consecutive_failures >= 2, timeout=3)
    finally:
        watcher.stop()


# -- the registration ----------------------------------------------------------------------------


def test_registrar_update_changes_the_instance_in_place(tmp_path, nacos):
    registrar = Registrar(
        client=make_client(nacos.address),
        registration=make_registration(metadata={"version": "0.1.0", "preserved.heart.beat.interval": "300"}),
        interval=0.3,
        runtime_dir=tmp_path / "run",
    )
    registrar.start(fail_fast=True)
    try:
        registrar.update(weight=3.0, metadata={"zone": "b"})
        wait_for(lambda: nacos.hosts("flask-api")[0].weight == 3.0, timeout=3)
        assert nacos.hosts("flask-api")[0].metadata == {
            "zone": "b",
            "version": "0.1.0",
            "preserved.heart.beat.interval": "300",
        }
        assert len(nacos.hosts("flask-api")) == 1
    finally:
        registrar.stop()


# -- a worker following --------------------------------------------------------------------------


def test_a_follower_applies_the_live_settings_and_leaves_the_rest_pending(app_with, tmp_path):
    app = app_with(CORS_ORIGINS="https://a.example", LOG_LEVEL="INFO")
    before = app.extensions[SETTINGS]
    follower = ConfigFollower(app, directory=tmp_path, version=0)
    settings = {
        "CORS_ORIGINS": "https://b.example",
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": "scrape-token-0123456789",
        "RATE_LIMIT_LOGIN": "1 per minute",
        "GUNICORN_TIMEOUT": 99,
    }
    publish_config_state(tmp_path, {"version": 1, "settings": settings, "app_values": {"feature.new_checkout": True}})
    follower.check()
    after = app.extensions[SETTINGS]
    assert after.web.CORS_ORIGINS == ["https://b.example"]
    assert logging.getLogger().level == logging.WARNING
    assert after.metrics.METRICS_TOKEN.get_secret_value() == "scrape-token-0123456789"
    assert after.limits.RATE_LIMIT_LOGIN == "1 per minute"
    assert after.server.GUNICORN_TIMEOUT == before.server.GUNICORN_TIMEOUT
    assert after.database.DATABASE_URL == before.database.DATABASE_URL
    assert "GUNICORN_TIMEOUT" in follower.pending
    assert after.secret("JWT_SECRET_KEY") == before.secret("JWT_SECRET_KEY")
    client = app.test_client()
    allowed = client.get("/api/v1/health/live", headers={"Origin": "https://b.example"})
    refused = client.get("/api/v1/health/live", headers={"Origin": "https://a.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert config.value("feature.new_checkout", default=False) is True
    assert client.get("/monitoring/metrics").status_code == 401  # METRICS_TOKEN is asked for now


def test_a_follower_ignores_a_version_it_has(app_with, tmp_path):
    app = app_with(CORS_ORIGINS="https://a.example")
    follower = ConfigFollower(app, directory=tmp_path, version=3)
    publish_config_state(tmp_path, {"version": 3, "settings": {"CORS_ORIGINS": "https://b.example"}})
    follower.check()
    assert app.extensions[SETTINGS].web.CORS_ORIGINS == ["https://a.example"]


# -- under gunicorn ------------------------------------------------------------------------------


def allowed_origin(base: str, origin: str) -> str | None:
    # A new connection each time: gunicorn hands each to whichever worker accepts first.
    headers = {"Origin": origin, "Connection": "close"}
    response = requests.get(f"{base}/api/v1/health/live", headers=headers, timeout=5)
    return response.headers.get("Access-Control-Allow-Origin")


def every_answer_allows(base: str, origin: str, *, requests_count: int = 24) -> bool:
    return all(allowed_origin(base, origin) == origin for _ in range(requests_count))


def worker_pids(log_path, message: str, *, version: int) -> set[int]:
    """The processes that logged the message for the version ("following..." at start, "...applied")."""
    lines = (json.loads(line) for line in log_path.read_text().splitlines())
    return {line["pid"] for line in lines if line["message"] == message and line.get("version") == version}


ADMIN = {"ADMIN_USERNAME": "root", "ADMIN_EMAIL": "root@example.com", "ADMIN_PASSWORD": "correct horse battery"}


def admin_token(base: str) -> str:
    credentials = {"username": ADMIN["ADMIN_USERNAME"], "password": ADMIN["ADMIN_PASSWORD"]}
    response = requests.post(f"{base}/auth/login", json=credentials, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture(params=[("2.x", 2.0), ("3.2", 1.0 + 2.0)], ids=["2.x", "3.2"])
def versioned_nacos(request):
    """The fake Nacos of each generation, and how soon every worker must follow a change: the
    listener answers at once (2.x); a 3.2 server is polled (NACOS_CONFIG_POLL_SECONDS=1 below)."""
    version, within = request.param
    fake = FakeNacos(version=version, listener_hold=2).start()
    yield fake, within
    fake.stop()


def test_every_gunicorn_worker_follows_a_change(tmp_path, versioned_nacos):
    nacos, within = versioned_nacos
    environment = service_environment(
        tmp_path,
        NACOS_SERVER_ADDR=nacos.address,
        NACOS_SERVICE_IP="127.0.0.1",
        NACOS_HEARTBEAT_INTERVAL="0.5",
        NACOS_DEREGISTER_TIME="5",
        NACOS_DRAIN_SECONDS="0",
        NACOS_CONFIG_POLL_SECONDS="1",
        NACOS_CONFIG_CACHE_DIR=str(tmp_path / "cache"),
        LOG_FORMAT="json",
    )
    subprocess.run(
        [sys.executable, "manage.py", "create-admin"],
        cwd=ROOT,
        env={**environment, "NACOS_ENABLED": "false", **ADMIN},
        check=True,
        capture_output=True,
        timeout=60,
    )
    nacos.publish(KEY.data_id, "cors:\n  origins: https://a.example\nlog:\n  level: INFO\n")
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log, serving(gunicorn(port), environment, port, log=log) as (base, _master):
        wait_for(lambda: len(worker_pids(log_path, "following the configuration from nacos", version=1)) == 4)
        assert every_answer_allows(base, "https://a.example")  # every worker started with it

        nacos.publish(KEY.data_id, "cors:\n  origins: https://b.example\nlog:\n  level: INFO\nnacos:\n  weight: 3\n")
        changed = time.monotonic()
        wait_for(lambda: len(worker_pids(log_path, "configuration from nacos applied", version=2)) == 4, timeout=9)
        assert time.monotonic() - changed < within
        assert every_answer_allows(base, "https://b.example")
        wait_for(lambda: nacos.hosts("flask-api")[0].weight == 3.0, timeout=3)

        # A bad change is refused: the workers keep the last good configuration.
        nacos.publish(KEY.data_id, "cors: [unclosed\n")
        wait_for(lambda: "configuration from nacos refused" in log_path.read_text(), timeout=within + 3)
        assert every_answer_allows(base, "https://b.example")

        # A change to a setting read at start only is pending; LOG_LEVEL is live.
        nacos.publish(
            KEY.data_id, "cors:\n  origins: https://c.example\nlog:\n  level: WARNING\ngunicorn:\n  timeout: 99\n"
        )
        wait_for(lambda: every_answer_allows(base, "https://c.example", requests_count=8), timeout=within + 3)
        assert re.search(r"takes effect at the next restart.*GUNICORN_TIMEOUT", log_path.read_text())

        # What any worker shows of it to an admin (names only, never values).
        headers = {"Authorization": f"Bearer {admin_token(base)}"}
        shown = requests.get(f"{base}/monitoring/nacos/config", headers=headers, timeout=5).json()
        assert (shown["enabled"], shown["watcher"], shown["version"]) == (True, "running", 3)
        assert shown["api"] == ("v1" if nacos.version == "2.x" else "v3")
        in_force = "cors:\n  origins: https://c.example\nlog:\n  level: WARNING\ngunicorn:\n  timeout: 99\n"
        assert [(c["data_id"], c["md5"]) for c in shown["configs"]] == [
            ("flask-api", ""),  # absent
            ("flask-api.yaml", hashlib.md5(in_force.encode(), usedforsecurity=False).hexdigest()),
            ("flask-api-development.yaml", ""),  # FLASK_ENV: development by default
        ]
        assert shown["sources"]["CORS_ORIGINS"] == "flask-api.yaml@DEFAULT_GROUP"
        assert shown["sources"]["DATABASE_URL"] == "environment"
        assert shown["pending"] == ["GUNICORN_TIMEOUT"] and shown["rejected"] is None
        assert "https://c.example" not in json.dumps(shown)

        time.sleep(0.3)
        lines_before = len(log_path.read_text().splitlines())
        assert every_answer_allows(base, "https://c.example")
        time.sleep(0.3)
        new_lines = log_path.read_text().splitlines()[lines_before:]
        assert not [line for line in new_lines if json.loads(line).get("level") == "info"]


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "run.py"], [str(BIN / "flask"), "run", "--reload"], [str(BIN / "flask"), "run", "--no-reload"]],
    ids=["run.py", "flask run --reload", "flask run"],
)
def test_the_development_servers_start_with_the_configuration_and_follow_it(tmp_path, command):
    nacos = FakeNacos(listener_hold=2).start()
    try:
        port = free_port()
        environment = service_environment(
            tmp_path,
            NACOS_SERVER_ADDR=nacos.address,
            NACOS_SERVICE_IP="127.0.0.1",
            NACOS_CONFIG_CACHE_DIR=str(tmp_path / "cache"),
            FLASK_ENV="development",
            DEBUG="true",  # the reloader, for run.py
            PORT=str(port),
            FLASK_RUN_PORT=str(port),
            TMPDIR=str(tmp_path),  # where the runtime directory is made
        )
        nacos.publish(KEY.data_id, "cors:\n  origins: https://a.example\nnacos:\n  weight: 2\n")
        with serving(command, environment, port) as (base, _process):
            assert allowed_origin(base, "https://a.example") == "https://a.example"
            wait_for(lambda: nacos.hosts("flask-api"))
            assert nacos.hosts("flask-api")[0].weight == 2.0  # registered with the configuration's weight
            # Read once, by the process that serves (not also by the reloader's watcher): three Data IDs.
            assert len(nacos.requests_to("GET", "/v1/cs/configs")) == 3
            assert len(list(tmp_path.glob("flask-api-nacos-*"))) == 1

            nacos.publish(KEY.data_id, "cors:\n  origins: https://b.example\nnacos:\n  weight: 3\n")
            wait_for(lambda: allowed_origin(base, "https://b.example") == "https://b.example", timeout=5)
            wait_for(lambda: nacos.hosts("flask-api")[0].weight == 3.0, timeout=3)
        assert not list(tmp_path.glob("flask-api-nacos-*"))  # nothing left behind
    finally:
        nacos.stop()
