"""The processes a scenario runs, each private to it and on loopback: the service under gunicorn,
a PostgreSQL cluster, a Redis server and the fake Nacos. None of them is a shared server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.config import normalise_database_url
from tests.processes import (
    eventually,
    free_port,
    gunicorn,
    port_open,
    service_environment,
    serving,
    start_process,
    stop_process,
)

WORKERS = 3  # gunicorn workers; the machines this runs on have 2 cores
# Production settings, with limits no load from one address reaches: scenarios testing the limits set their own.
SERVICE_SETTINGS = {
    "FLASK_ENV": "production",
    "NACOS_ENABLED": "false",
    "NACOS_DRAIN_SECONDS": "0",
    # Several workers: without Redis (the scenarios that use it set REDIS_URL) each counts apart.
    "RATE_LIMIT_ALLOW_MEMORY": "true",
    "RATE_LIMIT_LOGIN": "1000000 per minute",
    "RATE_LIMIT_LOGIN_ACCOUNT": "1000000 per minute",
    "RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS": "1000000 per minute",
    "RATE_LIMIT_CURRENT_PASSWORD": "1000000 per minute",
    "RATE_LIMIT_REGISTER": "1000000 per minute",
    "RATE_LIMIT_REFRESH": "1000000 per minute",
}
STOP_TIMEOUT_SECONDS = 30


@dataclass
class Service:
    base_url: str
    process: subprocess.Popen  # gunicorn's master
    log_path: Path

    def logged_errors(self) -> list[str]:
        """The error lines of its JSON log, each as its logger, message and exception, on one line."""
        errors = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("level") not in ("error", "critical"):
                continue
            error = f"{record.get('logger')}: {record.get('message')}"
            if exception := record.get("exception"):
                raised = exception[0]
                error += f": {raised.get('exc_type')} {str(raised.get('exc_value')).splitlines()[0][:200]}"
            errors.append(error)
        return errors


@contextmanager
def running_service(directory: Path, *, workers: int = WORKERS, **settings: str) -> Iterator[Service]:
    """The README's production command (gunicorn with ./gunicorn.conf.py) on a free loopback port,
    its database migrated first; its log goes to a file in `directory`."""
    port = free_port()
    env = service_environment(directory, **{**SERVICE_SETTINGS, **settings})
    log_path = directory / "service.log"
    with log_path.open("w") as log, serving(gunicorn(port, workers=workers), env, port, log=log) as (base, process):
        yield Service(base, process, log_path)


def _as_postgres() -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _postgres_bin() -> Path:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not installed:
        raise RuntimeError("PostgreSQL's pg_ctl is not installed")
    return installed[-1].parent


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free loopback port, to stop and start at will."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="flask-api-load-pg-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/flask_api"
        self._bin = _postgres_bin()
        self._running = False

    def __enter__(self) -> PrivatePostgres:
        try:
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres")
            self._run("initdb", "-D", "data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
            self.start()
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "flask_api")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        try:
            if self._running:
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def start(self) -> None:
        """Returns once the server accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self._run("pg_ctl", "-D", "data", "-l", "postgres.log", "-o", options, "-w", "-t", "60", "start")
        self._running = True

    def stop(self, *, mode: str) -> None:
        """`fast` ends sessions cleanly; `immediate` is a crash (recovery from the WAL at the next start).
        Returns once the server is gone."""
        self._run("pg_ctl", "-D", "data", "-m", mode, "-w", "-t", "60", "stop")
        self._running = False

    def query(self, sql: str) -> list[tuple]:
        engine = create_engine(normalise_database_url(self.url), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql))]
        finally:
            engine.dispose()

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(self._bin / program), *args],
            cwd=self.directory,
            check=True,
            capture_output=True,
            timeout=90,
        )


class PrivateRedis:
    """A redis-server that keeps nothing on disk, on a free loopback port, to kill and start at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.kill()

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = start_process(command)
        if not eventually(lambda: port_open(self.port), timeout=10):
            raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: gone at once, as in a crash."""
        stop_process(self._process, signum=signal.SIGKILL)
        self._process = None


class FakeNacosProcess:
    """tests/nacos/fake_nacos.py as its own process: stopping it and starting a new one is a
    Nacos restart that lost every instance."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> FakeNacosProcess:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self, *, configs: dict[str, str] | None = None) -> None:
        """Start a fresh fake; `configs` (dataId: content, DEFAULT_GROUP) are there from its first answer."""
        preloaded = [word for data_id, content in (configs or {}).items() for word in ("--config", data_id, content)]
        self._process = start_process([sys.executable, "-m", "tests.nacos.fake_nacos", str(self.port), *preloaded])
        if not eventually(lambda: port_open(self.port), timeout=10):
            raise RuntimeError("the fake Nacos did not start")

    def stop(self) -> None:
        stop_process(self._process, signum=signal.SIGKILL)
        self._process = None

    def publish(self, data_id: str, content: str) -> None:
        """Publish a config (DEFAULT_GROUP) as an operator would, through the v1 API."""
        response = requests.post(
            f"http://{self.address}/nacos/v1/cs/configs",
            data={"dataId": data_id, "group": "DEFAULT_GROUP", "content": content},
            timeout=5,
        )
        response.raise_for_status()

    def instances(self, service: str) -> list[dict]:
        """The service's instances, healthy or not, as Nacos lists them."""
        response = requests.get(
            f"http://{self.address}/nacos/v1/ns/instance/list",
            params={"serviceName": service, "healthyOnly": "false"},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()["hosts"]
