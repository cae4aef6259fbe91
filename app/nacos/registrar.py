"""Keeps this service registered in Nacos: register, heartbeat, register again, deregister.

Exactly one Registrar runs per service instance: in gunicorn's master (gunicorn.conf.py), or in
the process of the development server (run.py, `flask run`); never in a worker, so a worker that
dies or is recycled cannot deregister the instance. Workers see its state, and ask it to register
or deregister, through the files of app/nacos/state.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psutil
import structlog

from app.nacos.client import NacosClient, NacosError, NacosUnavailable, Registration
from app.nacos.settings import NacosSettings
from app.nacos.state import publish_state, read_desired, write_desired

log = structlog.get_logger(__name__)

TICK_SECONDS = 0.2  # how often the loop looks for work and for requests from workers
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0


def client_from_settings(settings: NacosSettings) -> NacosClient:
    return NacosClient(
        addresses=settings.NACOS_SERVER_ADDR,
        namespace=settings.NACOS_NAMESPACE,
        username=settings.NACOS_USERNAME,
        password=settings.NACOS_PASSWORD.get_secret_value() if settings.NACOS_PASSWORD else None,
        api=settings.NACOS_API,
        timeout=settings.NACOS_TIMEOUT,
        context_path=settings.NACOS_CONTEXT_PATH,
    )


def service_ip(settings: NacosSettings) -> str:
    """The address other services should call: configured, an interface's, or the one routing to Nacos."""
    if settings.NACOS_SERVICE_IP is not None:
        return str(settings.NACOS_SERVICE_IP)
    if settings.NACOS_NETWORK_INTERFACE:
        addresses = psutil.net_if_addrs().get(settings.NACOS_NETWORK_INTERFACE, [])
        for family in (socket.AF_INET, socket.AF_INET6):
            for address in addresses:
                if address.family == family:
                    return address.address.split("%")[0]
        raise NacosError(f"network interface {settings.NACOS_NETWORK_INTERFACE!r} has no IP address")
    host, port = _host_port(settings.NACOS_SERVER_ADDR[0])
    try:
        # A UDP "connection" sends nothing; it only asks the kernel which source address it would use.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostbyname(socket.gethostname())


def _host_port(address: str) -> tuple[str, int]:
    address = address.split("://", 1)[-1].rstrip("/")
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def registration_from_settings(settings: NacosSettings, *, port: int, version: str) -> Registration:
    interval_ms = int(settings.NACOS_HEARTBEAT_INTERVAL * 1000)
    return Registration(
        service_name=settings.NACOS_SERVICE_NAME,
        group=settings.NACOS_GROUP,
        ip=service_ip(settings),
        port=port,
        cluster=settings.NACOS_CLUSTER_NAME,
        weight=settings.NACOS_WEIGHT,
        ephemeral=settings.NACOS_EPHEMERAL,
        metadata={
            **settings.NACOS_METADATA,
            "version": version,
            # Nacos reads these per instance: beat interval, unhealthy after 3 missed beats, and
            # deletion after NACOS_DEREGISTER_TIME without a beat.
            "preserved.heart.beat.interval": str(interval_ms),
            "preserved.heart.beat.timeout": str(3 * interval_ms),
            "preserved.ip.delete.timeout": str(int(settings.NACOS_DEREGISTER_TIME * 1000)),
        },
    )


class Registrar:
    def __init__(self, *, client: NacosClient, registration: Registration, interval: float, runtime_dir: Path) -> None:
        self.client = client
        self.registration = registration
        self.interval = interval
        self.runtime_dir = runtime_dir
        self.registered = False
        self.draining = False
        self.last_heartbeat_at: str | None = None
        self.last_heartbeat_result: str | None = None
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self._reachable: bool | None = None
        self._next_action = 0.0
        self._desired_mtime_ns = 0
        self._reregister = False  # the registration changed (update): register it again
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nacos-registrar", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, fail_fast: bool) -> None:
        """Register in the background; with fail_fast, the first attempt happens here and raises."""
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        write_desired(self.runtime_dir, registered=True)
        self._desired_mtime_ns = read_desired(self.runtime_dir).written_ns
        if fail_fast:
            self._register()
        self._publish()
        self._thread.start()

    def stop(self) -> None:
        """The process is stopping: tell the workers (readiness fails from now on), stop beating and
        leave Nacos. Only the first call does anything."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.draining = True
        self._publish()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.client.timeout + 1)
        if self.registered:
            try:
                self._deregister()
            except NacosError as exc:
                log.warning("could not deregister from nacos", error=str(exc))
        self._publish()

    def close(self) -> None:
        """At process exit: stop, and remove the runtime directory (kept by stop() for the drain)."""
        self.stop()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def update(self, *, weight: float, metadata: dict[str, str]) -> None:
        """New NACOS_WEIGHT / NACOS_METADATA (configuration from Nacos): registering the same
        ip:port again updates the instance in place, from the loop, at once."""
        preserved = {
            k: v for k, v in self.registration.metadata.items() if k == "version" or k.startswith("preserved.")
        }
        self.registration = replace(self.registration, weight=weight, metadata={**metadata, **preserved})
        self._reregister = True
        self._next_action = 0.0

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            desired = self._read_desired()
            if desired is not None and not desired and self.registered:
                self._attempt(self._deregister)
            elif desired is not False and time.monotonic() >= self._next_action:
                self._attempt(self._beat if self.registered and not self._reregister else self._register)
            self._stopping.wait(TICK_SECONDS)

    def _attempt(self, action) -> None:
        try:
            action()
        except NacosError as exc:
            self.consecutive_failures += 1
            self.last_error = str(exc)
            # Never slower than the heartbeat, the rate Nacos expects from us anyway: once it is back,
            # the instance is listed (again) within one interval, however long it was away.
            delay = BACKOFF_FIRST_SECONDS * 2 ** (self.consecutive_failures - 1)
            self._next_action = time.monotonic() + min(delay, BACKOFF_CAP_SECONDS, self.interval)
            self._set_reachable(not isinstance(exc, NacosUnavailable), error=str(exc))
        else:
            self.consecutive_failures = 0
            self.last_error = None
            self._set_reachable(True)
        self._publish()

    def _register(self) -> None:
        self._reregister = False  # before the call: an update arriving during it is not lost
        try:
            self.client.register(self.registration)
        except NacosError:
            self._reregister = self.registered
            raise
        self.registered = True
        self._next_action = time.monotonic() + self.interval
        log.info(
            "registered in nacos",
            service=self.registration.service_name,
            ip=self.registration.ip,
            port=self.registration.port,
            server=self.client.server,
            api=self.client.api,
        )

    def _deregister(self) -> None:
        self.client.deregister(self.registration)
        self.registered = False
        log.info("deregistered from nacos", service=self.registration.service_name)

    def _beat(self) -> None:
        self.last_heartbeat_at = datetime.now(UTC).isoformat()
        try:
            beat = self.client.heartbeat(self.registration)
        except NacosError:
            self.last_heartbeat_result = "failed"
            raise
        if not beat.known:
            self.last_heartbeat_result = "instance unknown"
            log.warning("nacos no longer knows this instance; registering again")
            self._register()
            return
        self.last_heartbeat_result = "ok"
        self._next_action = time.monotonic() + (beat.interval or self.interval)

    def _set_reachable(self, reachable: bool, *, error: str | None = None) -> None:
        # One line per change of state, not one per attempt.
        if reachable == self._reachable:
            return
        if not reachable:
            log.warning("nacos unreachable; retrying in the background", error=error)
        elif self._reachable is False:
            log.info("nacos reachable again")
        self._reachable = reachable

    # -- what workers see and ask ------------------------------------------------------------

    def _read_desired(self) -> bool | None:
        """Whether workers want the instance registered (None: no wish on file); a new wish is acted on now."""
        wish = read_desired(self.runtime_dir)
        if wish is None:
            return None
        if wish.written_ns != self._desired_mtime_ns:
            self._desired_mtime_ns = wish.written_ns
            self._next_action = 0.0
        return wish.registered

    def _publish(self) -> None:
        state = {
            "registered": self.registered,
            "draining": self.draining,
            "server": self.client.server,
            "api": self.client.api,
            "ip": self.registration.ip,
            "port": self.registration.port,
            "metadata": self.registration.metadata,
            "last_heartbeat_at": self.last_heartbeat_at,
            "last_heartbeat_result": self.last_heartbeat_result,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "registrar_pid": os.getpid(),
            "updated_at": datetime.now(UTC).isoformat(),
        }
        publish_state(self.runtime_dir, state)
