"""Finding other services: cached instance lists, weighted choice, and calls that fail over."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import requests
import structlog

from app.discovery.client import Instance, NacosClient, NacosError

log = structlog.get_logger(__name__)

IN_USE_SECONDS = 300.0  # a service asked for within this long is kept fresh in the background


class NoInstanceAvailable(Exception):
    """Nacos lists no healthy instance of the service, and none is cached."""


@dataclass
class _Entry:
    instances: list[Instance]
    expires_at: float
    used_at: float
    stale_logged: bool = False


class Discovery:
    def __init__(self, *, client: NacosClient, group: str) -> None:
        self.client = client
        self.group = group
        self._cache: dict[tuple[str, bool], _Entry] = {}
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None

    def instances(self, service_name: str, *, healthy_only: bool = True) -> list[Instance]:
        """The service's instances, cached for the server's cacheMillis; the last good list while Nacos is down."""
        key = (service_name, healthy_only)
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                entry.used_at = now
                if now < entry.expires_at:
                    return entry.instances
        self._start_refresher()
        return self._refresh(key, entry)

    def choose(self, service_name: str, *, exclude: set[str] = frozenset()) -> Instance:
        """One healthy, enabled instance, chosen at random in proportion to its weight."""
        candidates = [
            instance
            for instance in self.instances(service_name)
            if instance.healthy and instance.enabled and instance.weight > 0 and instance.address not in exclude
        ]
        if not candidates:
            raise NoInstanceAvailable(f"no available instance of {service_name!r}")
        return random.choices(candidates, weights=[i.weight for i in candidates])[0]  # noqa: S311

    def _refresh(self, key: tuple[str, bool], entry: _Entry | None) -> list[Instance]:
        service_name, healthy_only = key
        try:
            instances, cache_seconds = self.client.list_instances(
                service_name, group=self.group, healthy_only=healthy_only
            )
        except NacosError as exc:
            if entry is None:
                raise NoInstanceAvailable(f"{service_name!r}: {exc}") from exc
            if not entry.stale_logged:
                log.warning("nacos unavailable; serving the last known instances", service=service_name)
                entry.stale_logged = True
            return entry.instances
        now = time.monotonic()
        with self._lock:
            self._cache[key] = _Entry(instances, now + cache_seconds, entry.used_at if entry else now)
        return instances

    def _start_refresher(self) -> None:
        with self._lock:
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_in_use, name="nacos-discovery", daemon=True)
                self._refresher.start()

    def _refresh_in_use(self) -> None:
        # Keeps lists of services in use fresh, so that callers rarely wait for Nacos.
        while True:
            time.sleep(1)
            now = time.monotonic()
            with self._lock:
                due = [
                    (key, entry)
                    for key, entry in self._cache.items()
                    if now >= entry.expires_at and now - entry.used_at < IN_USE_SECONDS
                ]
            for key, entry in due:
                self._refresh(key, entry)


def call_service(
    discovery: Discovery,
    service_name: str,
    method: str,
    path: str,
    *,
    attempts: int = 3,
    timeout: float = 5.0,
    session: requests.Session | None = None,
    **kwargs,
) -> requests.Response:
    """An HTTP request to some instance of a service; another instance is tried when one cannot be
    reached. Only connection failures are retried (the request never arrived), so this is safe for
    POST too; an answer of any status is returned as it is."""
    session = session or requests.Session()
    tried: set[str] = set()
    last_error: Exception | None = None
    for _ in range(attempts):
        try:
            instance = discovery.choose(service_name, exclude=tried)
        except NoInstanceAvailable:
            if last_error is None:
                raise
            break
        try:
            return session.request(method, f"http://{instance.address}{path}", timeout=timeout, **kwargs)
        except (requests.ConnectionError, requests.ConnectTimeout) as exc:
            tried.add(instance.address)
            last_error = exc
    raise NoInstanceAvailable(f"no instance of {service_name!r} answered: {last_error}")
