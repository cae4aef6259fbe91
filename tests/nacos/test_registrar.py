"""The registrar's lifecycle against the fake server: register, beat, recover, leave."""

import itertools
import json
import time

import pytest

from app.config import load_settings
from app.nacos.process import start_registrar
from app.nacos.registrar import Registrar, registration_from_settings
from app.nacos.state import STATE_FILE, RegistrationState, announce, registration_state, write_desired
from tests.nacos.helpers import dead_address, make_client, make_registration, wait_for

INTERVAL = 0.3


@pytest.fixture
def start(tmp_path):
    """start(client) -> a running Registrar beating every INTERVAL; stopped after the test."""
    registrars = []

    def make(client, *, fail_fast: bool = False, **registration) -> Registrar:
        registrar = Registrar(
            client=client,
            registration=make_registration(**registration),
            interval=INTERVAL,
            runtime_dir=tmp_path / f"run{len(registrars)}",
        )
        registrars.append(registrar)
        registrar.start(fail_fast=fail_fast)
        return registrar

    yield make
    for registrar in registrars:
        registrar.stop()


def state(registrar: Registrar) -> dict:
    return json.loads((registrar.runtime_dir / STATE_FILE).read_text())


def test_registers_then_beats_at_the_interval_the_server_asks(nacos, start):
    nacos.beat_interval_ms = 100  # the server asks for beats three times as often as configured
    registrar = start(make_client(nacos.address))
    wait_for(lambda: len(nacos.requests_to("PUT", "/beat")) >= 6, timeout=5)

    beats = [r.at for r in nacos.requests_to("PUT", "/beat")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
    assert max(gaps) < INTERVAL  # it followed the server, not its own setting
    assert state(registrar)["last_heartbeat_result"] == "ok" and state(registrar)["registered"]


@pytest.mark.parametrize(
    ("version", "register_path"), [("2.x", "/nacos/v1/ns/instance"), ("3.2", "/nacos/v3/client/ns/instance")]
)
def test_registers_again_within_one_interval_after_nacos_loses_its_state(nacos, start, version, register_path):
    nacos.version = version  # 2.x answers an unknown beat with 20404, 3.2 with 21003
    start(make_client(nacos.address))
    wait_for(lambda: nacos.hosts("flask-api"))

    nacos.restart()
    lost_at = time.monotonic()
    wait_for(lambda: nacos.hosts("flask-api"), timeout=5)

    assert time.monotonic() - lost_at < 2 * INTERVAL + 0.3
    registrations = [r for r in nacos.requests_to("POST", register_path) if r.query.get("heartBeat") != "true"]
    assert len(registrations) == 2


def test_outage_at_start_then_recovery_with_one_warning_per_change(nacos, start, caplog):
    nacos.stop()
    registrar = start(make_client(nacos.address))
    time.sleep(1.5)  # several failed attempts
    assert not state(registrar)["registered"] and state(registrar)["consecutive_failures"] >= 1

    nacos.start()
    wait_for(lambda: nacos.hosts("flask-api"), timeout=20)
    wait_for(lambda: state(registrar)["consecutive_failures"] == 0)  # published after the log line

    messages = [str(r.msg) for r in caplog.records]
    assert sum("nacos unreachable" in m for m in messages) == 1
    assert sum("nacos reachable again" in m for m in messages) == 1


def test_a_long_outage_at_start_is_retried_at_the_heartbeat_interval(nacos, start):
    nacos.stop()
    registrar = start(make_client(nacos.address))
    # Doubling from 1 s, five failures would take 15 s; capped at the interval they take a few.
    wait_for(lambda: state(registrar)["consecutive_failures"] >= 5, timeout=10)

    nacos.start()
    wait_for(lambda: nacos.hosts("flask-api"), timeout=5)


def test_fail_fast_raises_at_start(start):
    with pytest.raises(Exception, match="Connection"):
        start(make_client(dead_address()), fail_fast=True)


def test_fail_fast_setting_exits_with_one_line(monkeypatch):
    settings = load_settings({"NACOS_SERVER_ADDR": dead_address(), "NACOS_FAIL_FAST": True, "NACOS_TIMEOUT": 1}).nacos
    with pytest.raises(SystemExit) as raised:
        start_registrar(settings, serving_port=5000, version="test")
    assert str(raised.value).startswith("Nacos registration failed and NACOS_FAIL_FAST is set")


def test_stop_deregisters(nacos, start):
    registrar = start(make_client(nacos.address))
    wait_for(lambda: nacos.hosts("flask-api"))
    registrar.stop()
    assert nacos.hosts("flask-api") == [] and not state(registrar)["registered"]


def test_close_leaves_nothing_behind(nacos, start):
    registrar = start(make_client(nacos.address))
    wait_for(lambda: nacos.hosts("flask-api"))
    registrar.close()
    assert nacos.hosts("flask-api") == [] and not registrar.runtime_dir.exists()


def test_workers_wishes_are_carried_out(nacos, start):
    registrar = start(make_client(nacos.address))
    wait_for(lambda: nacos.hosts("flask-api"))

    write_desired(registrar.runtime_dir, registered=False)
    wait_for(lambda: not nacos.hosts("flask-api"), timeout=2)
    time.sleep(3 * INTERVAL)
    assert nacos.hosts("flask-api") == []  # no beat brings it back

    write_desired(registrar.runtime_dir, registered=True)
    wait_for(lambda: nacos.hosts("flask-api"), timeout=2)


def test_what_the_workers_see(nacos, start):
    nobody = RegistrationState(registrar_running=False, registered=False, draining=False, consecutive_failures=0)
    assert registration_state() == nobody
    registrar = start(make_client(nacos.address))
    announce(registrar.runtime_dir)  # as start_registrar() does, for the workers forked later
    wait_for(lambda: registration_state().registered)
    assert registration_state() == RegistrationState(
        registrar_running=True, registered=True, draining=False, consecutive_failures=0
    )

    registrar.stop()
    assert registration_state() == RegistrationState(
        registrar_running=True, registered=False, draining=True, consecutive_failures=0
    )


def test_registration_metadata_and_port_from_settings():
    settings = load_settings(
        {
            "NACOS_SERVICE_IP": "10.1.2.3",
            "NACOS_HEARTBEAT_INTERVAL": 2,
            "NACOS_DEREGISTER_TIME": 30,
            "NACOS_METADATA": {"zone": "a"},
        }
    ).nacos
    registration = registration_from_settings(settings, port=8000, version="9.9")
    assert (registration.ip, registration.port, registration.cluster) == ("10.1.2.3", 8000, "DEFAULT")
    assert registration.metadata == {
        "zone": "a",
        "version": "9.9",
        "preserved.heart.beat.interval": "2000",
        "preserved.heart.beat.timeout": "6000",
        "preserved.ip.delete.timeout": "30000",
    }


def test_ip_is_the_one_that_routes_to_nacos():
    settings = load_settings({"NACOS_SERVER_ADDR": "127.0.0.1:8848"}).nacos
    assert registration_from_settings(settings, port=1, version="x").ip == "127.0.0.1"


def test_an_interface_without_an_address_stops_the_start_with_one_line():
    settings = load_settings({"NACOS_NETWORK_INTERFACE": "no-such-interface0"}).nacos
    with pytest.raises(SystemExit, match="Configuration error: NACOS_NETWORK_INTERFACE"):
        start_registrar(settings, serving_port=5000, version="test")


def test_ip_of_a_named_interface():
    settings = load_settings({"NACOS_NETWORK_INTERFACE": "lo"}).nacos
    assert registration_from_settings(settings, port=1, version="x").ip == "127.0.0.1"
