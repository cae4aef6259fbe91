"""The configuration from Nacos at start, watched by one process, followed by every worker.

The client, its local files and the layering are stand-ins (tests/nacos/config_stand_ins.py):
what is tested here is the start-up read, the watcher and the propagation to the workers.
"""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
import requests

from app.config import load_settings
from app.extensions import SETTINGS
from app.nacos import config_follower
from app.nacos.config_follower import ConfigFollower, publish_config_state, read_config_state
from app.nacos.config_types import ConfigKey
from app.nacos.config_watcher import ConfigPublisher, ConfigWatcher, initial_contents
from app.nacos.registrar import Registrar
from tests.nacos.config_stand_ins import (
    NO_LISTENER_VARIABLE,
    SERVER_VARIABLE,
    DirectoryServer,
    LocalFiles,
    parts,
    stand_in_gunicorn,
)
from tests.nacos.helpers import make_client, make_registration, wait_for
from tests.processes import free_port, service_environment, serving

KEY = ConfigKey("flask-api.yaml", "DEFAULT_GROUP")


@pytest.fixture(autouse=True)
def _root_level_restored():
    # The watcher and the followers set the process's log level, as LOG_LEVEL says.
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.fixture
def server_dir(tmp_path):
    directory = tmp_path / "server"
    directory.mkdir()
    return directory


@pytest.fixture
def files(tmp_path):
    return LocalFiles(tmp_path / "local")


def publish(server_dir, text: str, data_id: str = KEY.data_id) -> None:
    """Atomically, as a server changes a config: a reader never sees half of it."""
    temporary = server_dir / f".{data_id}.tmp"
    temporary.write_text(text)
    temporary.replace(server_dir / data_id)


# -- the start -----------------------------------------------------------------------------------


def test_start_reads_the_server_and_keeps_a_snapshot(server_dir, files):
    publish(server_dir, "LOG_LEVEL: DEBUG\n")
    contents, api = initial_contents([KEY], client=DirectoryServer(server_dir), files=files, timeout=3)
    assert (contents[0].content, contents[0].origin, api) == ("LOG_LEVEL: DEBUG\n", "server", "v1")
    assert files.snapshot(KEY) == "LOG_LEVEL: DEBUG\n"


def test_an_absent_config_drops_its_snapshot(server_dir, files):
    files.save_snapshot(KEY, "LOG_LEVEL: DEBUG\n")
    contents, _api = initial_contents([KEY], client=DirectoryServer(server_dir), files=files, timeout=3)
    assert contents[0].content is None and files.snapshot(KEY) is None


def test_start_with_nacos_down_uses_the_snapshot(files, caplog):
    files.save_snapshot(KEY, "LOG_LEVEL: DEBUG\n")
    contents, api = initial_contents([KEY], client=DirectoryServer(None), files=files, timeout=3)
    assert (contents[0].content, contents[0].origin, api) == ("LOG_LEVEL: DEBUG\n", "snapshot", None)
    assert "nacos unreachable at start" in caplog.text


def test_start_with_nacos_down_and_no_snapshot_warns_once(files, caplog):
    keys = [KEY, ConfigKey("flask-api-production.yaml", "DEFAULT_GROUP")]
    started = time.monotonic()
    contents, _api = initial_contents(keys, client=DirectoryServer(None), files=files, timeout=3)
    assert time.monotonic() - started < 1
    assert [content.origin for content in contents] == ["absent", "absent"]
    assert caplog.text.count("starting on the local settings alone") == 1


def test_a_failover_file_wins_over_the_server(server_dir, files):
    publish(server_dir, "LOG_LEVEL: DEBUG\n")
    (files.root / "failover").mkdir(parents=True)
    (files.root / "failover" / KEY.data_id).write_text("LOG_LEVEL: ERROR\n")
    client = DirectoryServer(server_dir)
    contents, _api = initial_contents([KEY], client=client, files=files, timeout=3)
    assert (contents[0].content, contents[0].origin) == ("LOG_LEVEL: ERROR\n", "failover")
    assert client.reads == []


# -- validating and publishing -------------------------------------------------------------------


@pytest.fixture
def publisher(tmp_path, server_dir, files):
    return ConfigPublisher(parts=parts(DirectoryServer(server_dir), files), directory=tmp_path, local=load_settings({}))


def contents_of(server_dir, files):
    return initial_contents([KEY], client=DirectoryServer(server_dir), files=files, timeout=3)[0]


def test_a_bad_change_is_refused_whole_and_a_corrected_one_applied(tmp_path, server_dir, files, publisher, caplog):
    publish(server_dir, "LOG_LEVEL: WARNING\nCORS_ORIGINS: https://a.example\n")
    assert publisher.publish(contents_of(server_dir, files), at_start=True).logging.LOG_LEVEL == "WARNING"

    publish(server_dir, "log: [unclosed\n")
    assert publisher.publish(contents_of(server_dir, files)) is None
    state = read_config_state(tmp_path)
    assert state["version"] == 1 and state["settings"]["LOG_LEVEL"] == "WARNING"
    assert state["rejected"]["key"] == str(KEY)

    publish(server_dir, "LOG_LEVEL: verbose\nJWT_SECRET_KEY: s3cret-value-never-logged\n")
    assert publisher.publish(contents_of(server_dir, files)) is None
    rejected = read_config_state(tmp_path)["rejected"]
    assert (rejected["key"], rejected["setting"]) == (str(KEY), "LOG_LEVEL")
    assert "configuration from nacos refused" in caplog.text and "s3cret" not in caplog.text

    publish(server_dir, "LOG_LEVEL: ERROR\n")
    assert publisher.publish(contents_of(server_dir, files)).logging.LOG_LEVEL == "ERROR"
    state = read_config_state(tmp_path)
    assert (state["version"], state["rejected"], state["settings"]) == (2, None, {"LOG_LEVEL": "ERROR"})


def test_a_non_live_change_is_pending(tmp_path, server_dir, files, publisher, caplog):
    publish(server_dir, "LOG_LEVEL: WARNING\n")
    publisher.publish(contents_of(server_dir, files), at_start=True)
    publish(server_dir, "LOG_LEVEL: ERROR\ngunicorn:\n  timeout: 99\n")
    publisher.publish(contents_of(server_dir, files))
    assert read_config_state(tmp_path)["pending"] == ["GUNICORN_TIMEOUT"]
    assert "takes effect at the next restart" in caplog.text


# -- watching ------------------------------------------------------------------------------------


@pytest.mark.parametrize("listener", [True, False], ids=["long-poll", "v3-polling"])
def test_the_watcher_publishes_a_change(tmp_path, server_dir, files, publisher, listener):
    publish(server_dir, "LOG_LEVEL: WARNING\n")
    client = DirectoryServer(server_dir, listener=listener, hold_seconds=5)
    contents = contents_of(server_dir, files)
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
        publish(server_dir, "LOG_LEVEL: ERROR\nNACOS_WEIGHT: 3\n")
        started = time.monotonic()
        wait_for(lambda: read_config_state(tmp_path)["version"] == 2, timeout=3)
        assert time.monotonic() - started < (0.5 if listener else 1.0)
        assert updated and updated[0].nacos.NACOS_WEIGHT == 3
        assert read_config_state(tmp_path)["api"] == ("v1" if listener else "v3")
    finally:
        watcher.stop()


def test_the_watcher_keeps_trying_while_nacos_is_away(tmp_path, files, publisher):
    client = DirectoryServer(None)
    watcher = ConfigWatcher(client=client, files=files, publisher=publisher, contents=[], poll_seconds=0.2)
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


def test_a_follower_applies_the_live_settings_and_leaves_the_rest_pending(
    app_with, tmp_path, server_dir, files, monkeypatch
):
    monkeypatch.setattr(config_follower, "PARTS", parts(DirectoryServer(server_dir), files))
    app = app_with(CORS_ORIGINS="https://a.example", LOG_LEVEL="INFO")
    before = app.extensions[SETTINGS]
    app_values = []
    follower = ConfigFollower(app, directory=tmp_path, version=0, replace_app_values=app_values.append)
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
    assert app_values == [{"feature.new_checkout": True}]
    assert client.get("/monitoring/metrics").status_code == 401  # METRICS_TOKEN is asked for now


def test_a_follower_ignores_a_version_it_has(app_with, tmp_path, monkeypatch, server_dir, files):
    monkeypatch.setattr(config_follower, "PARTS", parts(DirectoryServer(server_dir), files))
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


@pytest.fixture
def gunicorn_environment(tmp_path, server_dir, nacos):
    return service_environment(
        tmp_path,
        NACOS_SERVER_ADDR=nacos.address,
        NACOS_SERVICE_IP="127.0.0.1",
        NACOS_HEARTBEAT_INTERVAL="0.5",
        NACOS_DEREGISTER_TIME="5",
        NACOS_DRAIN_SECONDS="0",
        NACOS_CONFIG_POLL_SECONDS="1",
        LOG_FORMAT="json",
        **{SERVER_VARIABLE: str(server_dir)},
    )


@pytest.mark.parametrize(("listener", "within"), [(True, 2.0), (False, 1.0 + 2.0)], ids=["2.x", "3.2"])
def test_every_gunicorn_worker_follows_a_change(tmp_path, server_dir, nacos, gunicorn_environment, listener, within):
    publish(server_dir, "cors:\n  origins: https://a.example\nlog:\n  level: INFO\n")
    environment = {**gunicorn_environment, NO_LISTENER_VARIABLE: "0" if listener else "1"}
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log, serving(stand_in_gunicorn(port), environment, port, log=log) as (base, _master):
        wait_for(lambda: len(worker_pids(log_path, "following the configuration from nacos", version=1)) == 4)
        assert every_answer_allows(base, "https://a.example")  # every worker started with it

        publish(server_dir, "cors:\n  origins: https://b.example\nlog:\n  level: INFO\nnacos:\n  weight: 3\n")
        changed = time.monotonic()
        wait_for(lambda: len(worker_pids(log_path, "configuration from nacos applied", version=2)) == 4, timeout=9)
        assert time.monotonic() - changed < within
        assert every_answer_allows(base, "https://b.example")
        wait_for(lambda: nacos.hosts("flask-api")[0].weight == 3.0, timeout=3)

        # A bad change is refused: the workers keep the last good configuration.
        publish(server_dir, "cors: [unclosed\n")
        wait_for(lambda: "configuration from nacos refused" in log_path.read_text(), timeout=within + 3)
        assert every_answer_allows(base, "https://b.example")

        # A change to a setting read at start only is pending; LOG_LEVEL is live.
        publish(server_dir, "cors:\n  origins: https://c.example\nlog:\n  level: WARNING\ngunicorn:\n  timeout: 99\n")
        wait_for(lambda: every_answer_allows(base, "https://c.example", requests_count=8), timeout=within + 3)
        assert re.search(r"takes effect at the next restart.*GUNICORN_TIMEOUT", log_path.read_text())
        time.sleep(0.3)
        lines_before = len(log_path.read_text().splitlines())
        assert every_answer_allows(base, "https://c.example")
        time.sleep(0.3)
        new_lines = log_path.read_text().splitlines()[lines_before:]
        assert not [line for line in new_lines if json.loads(line).get("level") == "info"]
