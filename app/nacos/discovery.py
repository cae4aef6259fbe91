"""Finding other services: cached instance lists, weighted choice, and calls that fail over."""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import requests
import structlog

from app.nacos.client import Instance, NacosClient, NacosError

log = structlog.get_logger(__name__)

IN_USE_SECONDS = 300.0  # a service this one called within this long is kept fresh in the background
MAX_CACHED_LISTS = 256  # instance lists kept; beyond that the least recently used go


class NoInstanceAvailable(Exception):
    """Nacos lists no healthy instance of the service, and none is cached."""


@dataclass
class _Entry:
    instances: list[Instance]
    expires_at: float
    used_at: float | None  # when this service last asked for it to call it; None: only ever looked up
    stale_logged: bool = False


class Discovery:
    def __init__(self, *, client: NacosClient, group: str, max_cached: int = MAX_CACHED_LISTS) -> None:
        self.client = client
        self.group = group
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple[str, bool], _Entry] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None

    def instances(self, service_name: str, *, healthy_only: bool = True, keep_fresh: bool = True) -> list[Instance]:
        """The service's instances, cached for the server's cacheMillis; the last good list while Nacos is down.

        keep_fresh: this service is about to call it, so the list is refreshed in the background while
        in use. A mere lookup (keep_fresh=False, as the monitoring endpoint does for any name a client
        sends) is cached too, but never refreshed: asking for many names must not keep Nacos busy."""
        key = (service_name, healthy_only)
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                if keep_fresh:
                    entry.used_at = now
                if now < entry.expires_at:
                    return entry.instances
        if keep_fresh:
            self._start_refresher()
        return self._refresh(key, entry, used_at=now if keep_fresh else None)

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

    def _refresh(self, key: tuple[str, bool], entry: _Entry | None, *, used_at: float | None) -> list[Instance]:
        service_name, healthy_only = key
        try:
            instances, cache_seconds = self.client.list_instances(
                service_name, group=self.group, healthy_only=healthy_only
            )
        except NacosError as exc:
            if entry is None:
                raise NoInstanceAvailable(f"{service_name!r}: {exc}") from exc
            with self._lock:  # the caller and the background refresher can both get here: one line
                first_time, entry.stale_logged = not entry.stale_logged, True
            if first_time:
                log.warning("nacos unavailable; serving the last known instances", service=service_name)
            return entry.instances
        expires_at = time.monotonic() + cache_seconds
        with self._lock:
            current = self._cache.get(key)
            if current is None:
                self._cache[key] = _Entry(instances, expires_at, used_at)
                self._evict()
            else:  # in place: refreshing a list is not using it, so it keeps its place in the order
                current.instances, current.expires_at, current.stale_logged = instances, expires_at, False
                if used_at is not None:
                    current.used_at = max(used_at, current.used_at or used_at)
        return instances

    def _evict(self) -> None:
        # Lists only looked up go first, so that lookups of many names cannot push out those of the
        # services this one calls.
        while len(self._cache) > self.max_cached:
            looked_up = (key for key, entry in self._cache.items() if entry.used_at is None)
            del self._cache[next(looked_up, next(iter(self._cache)))]

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
                    if now >= entry.expires_at and entry.used_at is not None and now - entry.used_at < IN_USE_SECONDS
                ]
            for key, entry in due:
                self._refresh(key, entry, used_at=None)


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
