"""3. Registry outage: Nacos goes away under load and comes back having forgotten every instance.

Requests to the service must not notice; once Nacos is back the service must be listed in it again
within two heartbeat intervals (the interval the server asks for, which here is the service's own
NACOS_HEARTBEAT_INTERVAL: the fake answers with the instance's preserved.heart.beat.interval).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.load.driver import Recorder, Report, load_in_background, register_and_log_in
from tests.load.servers import FakeNacosProcess, PrivatePostgres, running_service
from tests.processes import eventually

NAME = "registry-outage"
SERVICE_NAME = "flask-api"
PASSWORD = "load test: copper lantern 2290"


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
        f"{numbers.before_seconds:g} s for {numbers.down_seconds:g} s and comes back empty",
    )
    limit = 2 * numbers.heartbeat_seconds
    with tempfile.TemporaryDirectory() as tmp, PrivatePostgres() as postgres, FakeNacosProcess() as nacos:
        settings = {
            "DATABASE_URL": postgres.url,
            "NACOS_ENABLED": "true",
            "NACOS_SERVER_ADDR": nacos.address,
            "NACOS_SERVICE_IP": "127.0.0.1",
            "NACOS_SERVICE_NAME": SERVICE_NAME,
            "NACOS_HEARTBEAT_INTERVAL": str(numbers.heartbeat_seconds),
            "NACOS_DEREGISTER_TIME": str(3 * numbers.heartbeat_seconds),
        }
        with running_service(Path(tmp), **settings) as service:
            registered_before = eventually(lambda: nacos.instances(SERVICE_NAME), timeout=limit + 10)
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
                nacos.start()
                back = time.monotonic()
                listed = eventually(lambda: nacos.instances(SERVICE_NAME), timeout=limit + 10, interval=0.1)
                relisted_after = time.monotonic() - back if listed else None
                time.sleep(numbers.after_seconds)
            report.outcomes = recorder.outcomes
            report.notes += [f"service log error: {line}" for line in service.logged_errors()[:5]]

    failed = [o for o in report.outcomes if o.status is None or o.status >= 400]
    report.notes.append(
        "listed again "
        + (f"{relisted_after:.2f} s after Nacos was back" if relisted_after is not None else "never")
        + f" (limit: 2 x {numbers.heartbeat_seconds:g} s)"
    )
    report.check("listed in Nacos before the outage", registered_before)
    report.check("zero failed requests", not failed, f"{len(failed)} of {len(report.outcomes)}")
    report.check(
        "registered again within two heartbeat intervals of Nacos' return",
        relisted_after is not None and relisted_after <= limit,
        "never" if relisted_after is None else f"{relisted_after:.2f} s",
    )
    return report
