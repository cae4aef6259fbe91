"""A small Nacos naming client over HTTP (see ../shared/nacos-protocol.md).

Speaks the v1 open API (Nacos 1.x-3.1) and the v3 client API (3.2+), detected on first use or
forced; fails over between server addresses; logs in when credentials are set. It never logs the
access token or the password.
"""

from __future__ import annotations

import functools
import json

# requests imports netrc lazily, during a process's first request. In gunicorn's master that first
# request comes from the registrar's thread: a worker forked while that thread is inside the import
# inherits the module's import lock held by a thread it does not have, and each of its threads that
# then sends a request to Nacos waits for that lock for ever. Imported here, before any thread starts.
import netrc  # noqa: F401
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import structlog

log = structlog.get_logger(__name__)

V1_UNKNOWN_INSTANCE = 20404
V3_UNKNOWN_INSTANCE = 21003
# Status codes by which newer servers say "not this API": 2.x before 2.2 has no v2 (404), 3.0/3.1
# retire v2 (410), 3.2+ keep only v3 (501).
API_GONE = (404, 410, 501)
DEFAULT_CACHE_SECONDS = 10.0
TOKEN_REFRESH_FRACTION = 0.8  # log in again when this much of the token's lifetime has passed


class NacosError(Exception):
    """Nacos answered, but not with success."""


class NacosUnavailable(NacosError):
    """No Nacos address answered."""


class _ServerUpgraded(Exception):
    """The server stopped offering the API in use; the operation starts again on the new one."""


def _again_if_upgraded(operation):
    @functools.wraps(operation)
    def run(self, *args, **kwargs):
        try:
            return operation(self, *args, **kwargs)
        except _ServerUpgraded:
            return operation(self, *args, **kwargs)

    return run


@dataclass(frozen=True)
class Registration:
    """Who we are in Nacos: the identity (service, group, ip, port, cluster) and what we tell about it."""

    service_name: str
    group: str
    ip: str
    port: int
    cluster: str
    weight: float
    ephemeral: bool
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def grouped_name(self) -> str:
        return f"{self.group}@@{self.service_name}"


@dataclass(frozen=True)
class Beat:
    """A heartbeat's answer: whether the server still knows the instance, and when it wants the next."""

    known: bool
    interval: float | None = None  # seconds; None when the server names none


@dataclass(frozen=True)
class Instance:
    """One instance of a service, as Nacos lists it."""

    ip: str
    port: int
    weight: float = 1.0
    healthy: bool = True
    enabled: bool = True
    cluster: str = "DEFAULT"
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_nacos(cls, host: dict[str, Any]) -> Instance:
        return cls(
            ip=host["ip"],
            port=int(host["port"]),
            weight=float(host.get("weight", 1.0)),
            healthy=bool(host.get("healthy", True)),
            enabled=bool(host.get("enabled", True)),
            cluster=host.get("clusterName") or "DEFAULT",
            metadata=dict(host.get("metadata") or {}),
        )

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


class NacosClient:
    def __init__(
        self,
        *,
        addresses: list[str],
        namespace: str,
        username: str | None = None,
        password: str | None = None,
        api: str = "auto",
        timeout: float = 3.0,
    ) -> None:
        self._bases = [a.rstrip("/") if "://" in a else f"http://{a.rstrip('/')}" for a in addresses]
        self._current = 0  # index of the address that answered last
        self.namespace = namespace
        self._username = username
        self._password = password
        self.api = None if api == "auto" else api  # "v1" or "v3" once known
        self._api_forced = api != "auto"
        self.timeout = timeout
        self._session = requests.Session()
        self._token: str | None = None
        self._login_paths = ["/nacos/v3/auth/user/login", "/nacos/v1/auth/login"]  # 3.x first
        self._token_renew_at = 0.0
        self._lock = threading.Lock()  # one login at a time

    @property
    def server(self) -> str:
        return self._bases[self._current]

    # -- naming operations -------------------------------------------------------------------

    @_again_if_upgraded
    def register(self, registration: Registration) -> None:
        params = {
            **self._identity(registration),
            "weight": registration.weight,
            "enabled": "true",
            "healthy": "true",
            "metadata": json.dumps(registration.metadata),
        }
        self._naming("POST", "instance", params)

    @_again_if_upgraded
    def deregister(self, registration: Registration) -> None:
        self._naming("DELETE", "instance", self._identity(registration))

    @_again_if_upgraded
    def heartbeat(self, registration: Registration) -> Beat:
        """Renew the instance. An unknown instance (the server restarted or expired it) must register again."""
        if self._detected_api() == "v1":
            beat = {
                "serviceName": registration.grouped_name,
                "ip": registration.ip,
                "port": registration.port,
                "cluster": registration.cluster,
                "weight": registration.weight,
                "ephemeral": registration.ephemeral,
                "metadata": registration.metadata,
            }
            params = {**self._identity(registration), "serviceName": registration.grouped_name}
            reply = self._naming("PUT", "instance/beat", {**params, "beat": json.dumps(beat)})
            interval_ms = reply.get("clientBeatInterval")
            return Beat(
                known=reply.get("code") != V1_UNKNOWN_INSTANCE, interval=interval_ms / 1000 if interval_ms else None
            )
        reply = self._naming("POST", "instance?heartBeat=true", self._identity(registration))
        return Beat(known=reply.get("code") != V3_UNKNOWN_INSTANCE)

    @_again_if_upgraded
    def list_instances(self, service_name: str, *, group: str, healthy_only: bool) -> tuple[list[Instance], float]:
        """The instances of a service and how long the server says the list may be cached (seconds)."""
        params = {
            "serviceName": service_name,
            "groupName": group,
            "namespaceId": self.namespace,
            "healthyOnly": str(healthy_only).lower(),
        }
        reply = self._naming("GET", "instance/list", params)
        if self.api == "v3":
            hosts = reply.get("data") or []
            return [Instance.from_nacos(h) for h in hosts if not healthy_only or h.get("healthy", True)], (
                DEFAULT_CACHE_SECONDS
            )
        hosts = reply.get("hosts") or []
        cache_seconds = (reply.get("cacheMillis") or DEFAULT_CACHE_SECONDS * 1000) / 1000
        return [Instance.from_nacos(h) for h in hosts], cache_seconds

    # -- protocol ----------------------------------------------------------------------------

    def _identity(self, registration: Registration) -> dict[str, Any]:
        # Every field explicit: an unset cluster must never travel as the literal "None".
        return {
            "serviceName": registration.service_name,
            "groupName": registration.group,
            "namespaceId": self.namespace,
            "ip": registration.ip,
            "port": registration.port,
            "clusterName": registration.cluster,
            "ephemeral": str(registration.ephemeral).lower(),
        }

    def _detected_api(self) -> str:
        if self.api is None:
            self._probe_api()
        return self.api

    def _probe_api(self) -> None:
        """Ask v1 first (every server before 3.2 has it); a v1 'gone' answer means a 3.2+ server."""
        response = self._send("GET", "/nacos/v1/ns/instance/list", {"serviceName": "nacos.probe"})
        self.api = "v3" if response.status_code in API_GONE else "v1"
        log.info("nacos API detected", api=self.api, server=self.server)

    def _naming(self, method: str, operation: str, params: dict[str, Any]) -> dict:
        api = self._detected_api()
        path = f"/nacos/v1/ns/{operation}" if api == "v1" else f"/nacos/v3/client/ns/{operation}"
        response = self._send(method, path, params)
        if response.status_code in API_GONE and api == "v1":
            if self._api_forced:
                raise NacosError(f"{path} answered {response.status_code}: set NACOS_API=v3 or auto")
            self.api = None  # the server was upgraded under us: detect again
            raise _ServerUpgraded
        if response.status_code != 200:
            raise NacosError(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
        try:
            reply = response.json()
        except ValueError:
            return {"text": response.text}  # v1 answers plain "ok"
        if api == "v3" and reply.get("code") not in (0, V3_UNKNOWN_INSTANCE):
            raise NacosError(f"{method} {path}: {reply.get('message')}")
        return reply if isinstance(reply, dict) else {"data": reply}

    def _send(self, method: str, path: str, params: dict[str, Any]) -> requests.Response:
        """One request, failing over between addresses; logs in first and once more on a 403."""
        for attempt in range(2):
            token = self._access_token()
            response = self._on_any_address(method, path, params, token)
            if response.status_code == 403 and self._username and attempt == 0:
                self._forget_token()
                continue
            return response
        return response

    def _on_any_address(
        self, method: str, path: str, params: dict[str, Any], token: str | None = None
    ) -> requests.Response:
        """The first address that answers, starting with the one that answered last."""
        query = {"accessToken": token} if token else {}
        # Parameters travel in the form body of writes and in the query of reads, as Nacos' own
        # clients send them; the token is always in the query.
        if method in ("POST", "PUT"):
            kwargs = {"params": query, "data": params}
        else:
            kwargs = {"params": {**params, **query}}
        errors = []
        for offset in range(len(self._bases)):
            index = (self._current + offset) % len(self._bases)
            try:
                response = self._session.request(method, self._bases[index] + path, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                errors.append(f"{self._bases[index]}: {type(exc).__name__}")
                continue
            if response.status_code in (502, 503, 504):
                errors.append(f"{self._bases[index]}: HTTP {response.status_code}")
                continue
            self._current = index
            return response
        raise NacosUnavailable("; ".join(errors))

    # -- auth --------------------------------------------------------------------------------

    def _access_token(self) -> str | None:
        if not self._username:
            return None
        with self._lock:
            if self._token is None or time.monotonic() >= self._token_renew_at:
                self._login()
            return self._token

    def _forget_token(self) -> None:
        with self._lock:
            self._token = None

    def _login(self) -> None:
        # The password goes in the form body, never the URL, where access logs would keep it.
        form = {"username": self._username, "password": self._password}
        for path in list(self._login_paths):
            response = self._on_any_address("POST", path, form)
            if response.status_code in API_GONE:
                self._login_paths.remove(path)  # not on this server: do not ask again
                continue
            if response.status_code != 200:
                raise NacosError(f"Nacos login refused ({response.status_code}) for user {self._username!r}")
            reply = response.json()
            self._token = reply["accessToken"]
            ttl = float(reply.get("tokenTtl", 18000))
            self._token_renew_at = time.monotonic() + ttl * TOKEN_REFRESH_FRACTION
            log.info("logged in to nacos", user=self._username, ttl_seconds=ttl)
            return
        raise NacosError("Nacos offers no login API")
