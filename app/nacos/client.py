"""A small Nacos client over HTTP, for naming and configuration (see ../shared/nacos-protocol.md).

Speaks the v1 open API (Nacos 1.x-3.1) and the v3 client API (3.2+), detected on first use or
forced; fails over between server addresses; logs in when credentials are set and sends the token
in headers, never in a URL. It never logs the access token or the password.
"""

from __future__ import annotations

import functools
import hashlib
import json

# requests imports netrc lazily, during a process's first request. In gunicorn's master that first
# request comes from the registrar's thread: a worker forked while that thread is inside the import
# inherits the module's import lock held by a thread it does not have, and each of its threads that
# then sends a request to Nacos waits for that lock for ever. Imported here, before any thread starts.
import netrc  # noqa: F401
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

import requests
import structlog

from app.nacos.config_types import ConfigContent, ConfigKey

log = structlog.get_logger(__name__)

V1_UNKNOWN_INSTANCE = 20404
V3_UNKNOWN_INSTANCE = 21003
# Status codes by which newer servers say "not this API": 2.x before 2.2 has no v2 (404), 3.0/3.1
# retire v2 (410), 3.2+ keep only v3 (501).
API_GONE = (404, 410, 501)
DEFAULT_CACHE_SECONDS = 10.0
TOKEN_REFRESH_FRACTION = 0.8  # log in again when this much of the token's lifetime has passed
# A v1 config read answers 404 for an absent config, so only these say "no v1 here".
CONFIG_API_GONE = (410, 501)
V3_CONFIG_ABSENT = 20004
CONFIG_BUSY = 409  # "requested file is being modified, please try later."
CONFIG_BUSY_RETRIES = 3
CONFIG_BUSY_PAUSE = 0.2  # seconds
LISTENER_MIN_HOLD = 10.0  # the server holds a long poll at least this long (seconds)
WORD, LINE = "\x02", "\x01"  # the separators of Listening-Configs and of the listener's answer


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
        context_path: str = "/nacos",
    ) -> None:
        self._bases = [a.rstrip("/") if "://" in a else f"http://{a.rstrip('/')}" for a in addresses]
        self._current = 0  # index of the address that answered last
        self._context = context_path.rstrip("/")  # "" for a server at the root, "/nacos" by default
        self.namespace = namespace
        self._username = username
        self._password = password
        self.api = None if api == "auto" else api  # "v1" or "v3" once known
        self._api_forced = api != "auto"
        self.timeout = timeout
        self._session = requests.Session()
        self._token: str | None = None
        self._login_paths = [f"{self._context}/v3/auth/user/login", f"{self._context}/v1/auth/login"]  # 3.x first
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

    # -- configuration operations ------------------------------------------------------------

    @_again_if_upgraded
    def get_config(self, key: ConfigKey) -> ConfigContent:
        """The config's content as the server has it; content None (md5 "") when it does not exist."""
        if self._detected_api() == "v1":
            path = f"{self._context}/v1/cs/configs"
            response = self._config_read(path, {"dataId": key.data_id, "group": key.group, **self._tenant()})
            self._check_not_gone(response, path, CONFIG_API_GONE)
            if response.status_code == 404:
                return ConfigContent(key, None, "", None, None)
            if response.status_code != 200:
                raise NacosError(f"GET {path} answered {response.status_code} for {key}")
            content = response.content.decode("utf-8")
            return ConfigContent(
                key,
                content,
                response.headers.get("Content-MD5") or _md5(content),
                response.headers.get("Config-Type") or None,
                _http_date(response.headers.get("Last-Modified")),
            )
        path = f"{self._context}/v3/client/cs/config"
        params = {"namespaceId": self.namespace, "groupName": key.group, "dataId": key.data_id}
        response = self._config_read(path, params)
        if response.status_code != 200:
            raise NacosError(f"GET {path} answered {response.status_code} for {key}")
        reply = response.json()
        if reply.get("code") == V3_CONFIG_ABSENT:
            return ConfigContent(key, None, "", None, None)
        if reply.get("code") != 0 or not isinstance(reply.get("data"), dict):
            raise NacosError(f"GET {path} for {key}: {reply.get('message')}")
        data = reply["data"]
        content = data.get("content") or ""
        modified = data.get("lastModified")
        return ConfigContent(
            key,
            content,
            data.get("md5") or _md5(content),
            data.get("contentType") or None,
            modified / 1000 if isinstance(modified, int | float) else None,
        )

    @_again_if_upgraded
    def listen(self, known: dict[ConfigKey, str], *, hold_seconds: float = 30) -> list[ConfigKey] | None:
        """Wait up to hold_seconds for a change to any of the keys (known: key -> md5 held, "" when
        absent) and return the changed keys, [] when none changed. None: the server has no listener
        (3.2+): poll get_config and compare md5s instead."""
        if self._detected_api() == "v3":
            return None
        if not known:
            return []
        tenant = self._tenant().get("tenant")
        listening = "".join(
            WORD.join([key.data_id, key.group, md5, *([tenant] if tenant else [])]) + LINE for key, md5 in known.items()
        )
        path = f"{self._context}/v1/cs/configs/listener"
        response = self._send(
            "POST",
            path,
            {"Listening-Configs": listening},
            # Without this header the server answers at once (its legacy short poll).
            headers={"Long-Pulling-Timeout": str(int(hold_seconds * 1000))},
            read_timeout=max(hold_seconds, LISTENER_MIN_HOLD) * 1.5,
        )
        self._check_not_gone(response, path, API_GONE)
        if response.status_code != 200:
            raise NacosError(f"POST {path} answered {response.status_code}")
        changed = []
        for line in unquote(response.text).split(LINE):
            words = line.split(WORD)
            if len(words) >= 2:
                changed.append(ConfigKey(data_id=words[0], group=words[1]))
        return changed

    def _config_read(self, path: str, params: dict[str, Any]) -> requests.Response:
        """A read, again after a short pause while the server says the config is being written."""
        for _ in range(CONFIG_BUSY_RETRIES):
            response = self._send("GET", path, params)
            if response.status_code != CONFIG_BUSY:
                return response
            time.sleep(CONFIG_BUSY_PAUSE)
        return response

    def _tenant(self) -> dict[str, str]:
        # The public namespace travels as no tenant at all: a 2.x listener does not map "public"
        # to its internal "" and would report the config changed on every poll.
        return {} if self.namespace in ("", "public") else {"tenant": self.namespace}

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
        response = self._send("GET", f"{self._context}/v1/ns/instance/list", {"serviceName": "nacos.probe"})
        self.api = "v3" if response.status_code in API_GONE else "v1"
        log.info("nacos API detected", api=self.api, server=self.server)

    def _naming(self, method: str, operation: str, params: dict[str, Any]) -> dict:
        api = self._detected_api()
        path = f"{self._context}/v1/ns/{operation}" if api == "v1" else f"{self._context}/v3/client/ns/{operation}"
        response = self._send(method, path, params)
        if api == "v1":
            self._check_not_gone(response, path, API_GONE)
        if response.status_code != 200:
            raise NacosError(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
        try:
            reply = response.json()
        except ValueError:
            return {"text": response.text}  # v1 answers plain "ok"
        if api == "v3" and reply.get("code") not in (0, V3_UNKNOWN_INSTANCE):
            raise NacosError(f"{method} {path}: {reply.get('message')}")
        return reply if isinstance(reply, dict) else {"data": reply}

    def _check_not_gone(self, response: requests.Response, path: str, gone: tuple[int, ...]) -> None:
        if response.status_code in gone:
            if self._api_forced:
                raise NacosError(f"{path} answered {response.status_code}: set NACOS_API=v3 or auto")
            self.api = None  # the server was upgraded under us: detect again
            raise _ServerUpgraded

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """One request, failing over between addresses; logs in first and once more on a 403."""
        for attempt in range(2):
            token = self._access_token()
            response = self._on_any_address(method, path, params, token, headers=headers, read_timeout=read_timeout)
            if response.status_code == 403 and self._username and attempt == 0:
                self._forget_token()
                continue
            return response
        return response

    def _on_any_address(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        token: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """The first address that answers, starting with the one that answered last."""
        # The token travels in headers, never in the URL, where access logs would keep it: 2.x and
        # later read the bearer header, 1.x the accessToken header.
        auth = {"Authorization": f"Bearer {token}", "accessToken": token} if token else {}
        # Parameters travel in the form body of writes and in the query of reads, as Nacos' own
        # clients send them.
        kwargs = {"data": params} if method in ("POST", "PUT") else {"params": params}
        timeout = (self.timeout, read_timeout or self.timeout)
        errors = []
        for offset in range(len(self._bases)):
            index = (self._current + offset) % len(self._bases)
            try:
                response = self._session.request(
                    method, self._bases[index] + path, headers={**auth, **(headers or {})}, timeout=timeout, **kwargs
                )
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


def _md5(content: str) -> str:
    return hashlib.md5(content.encode("utf-8")).hexdigest()  # noqa: S324 - Nacos' checksum, not security


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
