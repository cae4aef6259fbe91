"""3. Registry outage: Nacos goes away under load and comes back having forgotten every instance.

Requests to the service must not notice; once Nacos is back the service must be listed in it again
within two heartbeat intervals (the interval the server asks for, which here is the service's own
NACOS_HEARTBEAT_INTERVAL: the fake answers with the instance's preserved.heart.beat.interval).

The service also takes its configuration from that Nacos. While Nacos is away an operator changes it
(the restarted fake comes back holding the new content): the new value must be in force in every
worker within a few seconds of Nacos' return, the watcher's longest retry wait plus the 2 s in which
the workers follow it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.load.driver import Recorder, Report, load_in_background, register_and_log_in
from tests.load.servers import FakeNacosProcess, PrivatePostgres, running_service
from tests.processes import eventually

NAME = "registry-outage"
SERVICE_NAME = "flask-api"
PASSWORD = "load test: copper lantern 2290"
CONFIG_DATA_ID = f"{SERVICE_NAME}.yaml"  # ${prefix}.${ext}, the prefix being the service's name
ORIGIN_BEFORE = "https://before.example"
ORIGIN_AFTER = "https://after.example"
WORKERS_FOLLOW_SECONDS = 2


def cors_config(origin: str) -> str:
    return f"cors:\n  origins: {origin}\nlog:\n  level: INFO\n"


def every_worker_allows(base_url: str, origin: str, *, connections: int = 12) -> bool:
    """CORS_ORIGINS as the workers apply it: a new connection each time, so that each lands on
    whichever worker accepts first."""
    headers = {"Origin": origin, "Connection": "close"}
    return all(
        requests.get(f"{base_url}/api/v1/health/live", headers=headers, timeout=5).headers.get(
            "Access-Control-Allow-Origin"
        )
        == origin
        for _ in range(connections)
    )


@dataclass(frozen=True)
class Numbers:
    clients: int
    heartbeat_seconds: float
    before_seconds: float
    down_seconds: float
    after_seconds: float


LONG = Numbers(clients=6, heartbeat_seconds=5, before_seconds=10, down_seconds=60, after_seconds=5)
SHORT = Numbers(clients=4, heartbeat_seconds=2, before_seconds=3, down_seconds=5, after_seconds=2)


def run(numbers: Numbers) -> Report:
    report = Report(
        NAME,
        f"{numbers.clients} clients; heartbeat every {numbers.heartbeat_seconds:g} s; the fake Nacos stops after "
        f"{numbers.before_seconds:g} s for {numbers.down_seconds:g} s and comes back empty, "
        "its configuration changed meanwhile",
    )
    limit = 2 * numbers.heartbeat_seconds
    # The watcher's retry wait is capped by NACOS_CONFIG_POLL_SECONDS, set to the heartbeat interval.
    config_limit = numbers.heartbeat_seconds + WORKERS_FOLLOW_SECONDS
    with tempfile.TemporaryDirectory() as tmp, PrivatePostgres() as postgres, FakeNacosProcess() as nacos:
        settings = {
            "DATABASE_URL": postgres.url,
            "NACOS_ENABLED": "true",
            "NACOS_SERVER_ADDR": nacos.address,
            "NACOS_SERVICE_IP": "127.0.0.1",
            "NACOS_SERVICE_NAME": SERVICE_NAME,
            "NACOS_HEARTBEAT_INTERVAL": str(numbers.heartbeat_seconds),
            "NACOS_DEREGISTER_TIME": str(3 * numbers.heartbeat_seconds),
            "NACOS_CONFIG_POLL_SECONDS": str(numbers.heartbeat_seconds),
            "NACOS_CONFIG_CACHE_DIR": str(Path(tmp) / "nacos-config"),
        }
        nacos.publish(CONFIG_DATA_ID, cors_config(ORIGIN_BEFORE))
        with running_service(Path(tmp), **settings) as service:
            registered_before = eventually(lambda: nacos.instances(SERVICE_NAME), timeout=limit + 10)
            config_before = eventually(lambda: every_worker_allows(service.base_url, ORIGIN_BEFORE), timeout=5)
            recorder = Recorder(service.base_url)
            token = register_and_log_in(service.base_url, username="registry", password=PASSWORD)

            def client(_number: int) -> None:
                recorder.request("readiness", "GET", "/api/v1/health")
                recorder.request("login", "POST", "/auth/login", json={"username": "registry", "password": PASSWORD})
                recorder.request("users/me", "GET", "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
                recorder.request("nacos status", "GET", "/monitoring/metrics?format=json")  # registrar's state

            total = numbers.before_seconds + numbers.down_seconds + limit + numbers.after_seconds + 60
            with load_in_background(client, clients=numbers.clients, limit_seconds=total):
                time.sleep(numbers.before_seconds)
                nacos.stop()
                time.sleep(numbers.down_seconds)
                nacos.start(configs={CONFIG_DATA_ID: cors_config(ORIGIN_AFTER)})  # changed meanwhile
                back = time.monotonic()
                listed = eventually(lambda: nacos.instances(SERVICE_NAME), timeout=limit + 10, interval=0.1)
                relisted_after = time.monotonic() - back if listed else None
                followed = eventually(
                    lambda: every_worker_allows(service.base_url, ORIGIN_AFTER),
                    timeout=max(config_limit + 10 - (time.monotonic() - back), 1),
                    interval=0.1,
                )
                config_after = time.monotonic() - back if followed else None
                time.sleep(numbers.after_seconds)
            report.outcomes = recorder.outcomes
            report.notes += [f"service log error: {line}" for line in service.logged_errors()[:5]]

    failed = [o for o in report.outcomes if o.status is None or o.status >= 400]
    report.notes.append(
        "listed again "
        + (f"{relisted_after:.2f} s after Nacos was back" if relisted_after is not None else "never")
        + f" (limit: 2 x {numbers.heartbeat_seconds:g} s)"
    )
    report.notes.append(
        "changed configuration in force in every worker "
        + (f"{config_after:.2f} s after Nacos was back" if config_after is not None else "never")
        + f" (limit: {numbers.heartbeat_seconds:g} s retry + {WORKERS_FOLLOW_SECONDS} s)"
    )
    report.check("listed in Nacos before the outage", registered_before)
    report.check("configuration from Nacos in force in every worker before the outage", config_before)
    report.check("zero failed requests", not failed, f"{len(failed)} of {len(report.outcomes)}")
    report.check(
        "registered again within two heartbeat intervals of Nacos' return",
        relisted_after is not None and relisted_after <= limit,
        "never" if relisted_after is None else f"{relisted_after:.2f} s",
    )
    report.check(
        "configuration changed during the outage in force in every worker soon after Nacos' return",
        config_after is not None and config_after <= config_limit,
        "never" if config_after is None else f"{config_after:.2f} s",
    )
    return report
