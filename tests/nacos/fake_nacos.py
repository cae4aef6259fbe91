"""A fake Nacos server for the tests, faithful to ../shared/nacos-protocol.md.

Versions: "2.x" (v1 API; v3 paths 404), "3.1" (v1 and v3; v2 410), "3.2" (v3 only; v1/v2 501).
Naming and the configuration center (v1 read, publish and long-poll listener with 2.x's
public-namespace trap; v3 read), auth (403 without a valid token), ephemeral-instance expiry from
the preserved.* metadata, restart with state loss, stop/start on the same port, a context path,
and a log of every request received.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from tests.processes import close_server, serve_in_background

DEFAULT_BEAT_TIMEOUT_MS = 15000
DEFAULT_DELETE_TIMEOUT_MS = 30000
MIN_LISTENER_HOLD_MS = 10000
WORD, LINE = "\x02", "\x01"
# What Nacos accepts in a dataId or group (ParamUtils.isValid).
_VALID_NAME = re.compile(r"^[A-Za-z0-9._:-]+$")
_TYPES = {"yaml": "yaml", "yml": "yaml", "properties": "properties", "json": "json"}


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    at: float
    url: str = ""  # as sent: the path with its query, before the context path is taken off
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}


@dataclass
class StoredInstance:
    namespace: str
    group: str
    service: str
    cluster: str
    ip: str
    port: int
    weight: float
    enabled: bool
    ephemeral: bool
    metadata: dict[str, str]
    last_beat: float = field(default_factory=time.monotonic)
    healthy: bool = True

    def timeout(self, key: str, default: int) -> float:
        return int(self.metadata.get(key, default)) / 1000

    def as_host(self) -> dict:
        grouped = f"{self.group}@@{self.service}"
        return {
            "instanceId": f"{self.ip}#{self.port}#{self.cluster}#{grouped}",
            "ip": self.ip,
            "port": self.port,
            "weight": self.weight,
            "healthy": self.healthy,
            "enabled": self.enabled,
            "ephemeral": self.ephemeral,
            "clusterName": self.cluster,
            "serviceName": grouped,
            "metadata": self.metadata,
            "instanceHeartBeatInterval": 5000,
            "instanceHeartBeatTimeOut": DEFAULT_BEAT_TIMEOUT_MS,
            "ipDeleteTimeout": DEFAULT_DELETE_TIMEOUT_MS,
        }


@dataclass
class StoredConfig:
    content: str
    type: str
    last_modified: float = field(default_factory=time.time)

    @property
    def md5(self) -> str:
        return hashlib.md5(self.content.encode()).hexdigest()  # noqa: S324 - Nacos' checksum


class FakeNacos:
    def __init__(
        self,
        *,
        version: str = "2.x",
        credentials: tuple[str, str] | None = None,
        token_ttl: float = 18000,
        beat_interval_ms: int | None = None,
        cache_millis: int = 10000,
        listener_hold: float | None = None,
        context_path: str = "/nacos",
    ) -> None:
        self.version = version
        self.credentials = credentials
        self.token_ttl = token_ttl
        self.beat_interval_ms = beat_interval_ms  # None: as the instance's metadata says, else 5000
        self.cache_millis = cache_millis
        # Seconds a long poll is held at most; None: as the server, max(10 s, Long-Pulling-Timeout - 0.5 s).
        self.listener_hold = listener_hold
        self.context_path = context_path
        self.busy_reads = 0  # the next this many config reads answer 409 "being modified"
        self.received: list[Received] = []
        self.instances: dict[tuple, StoredInstance] = {}
        self.configs: dict[tuple[str, str, str], StoredConfig] = {}  # (namespace, group, dataId)
        self.tokens: dict[str, float] = {}
        self.lock = threading.RLock()
        self.config_changed = threading.Condition(self.lock)
        self._down = False
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    # -- control -----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeNacos:
        fake = self

        class Handler(_Handler):
            nacos = fake

        self._down = False
        self._server = serve_in_background(Handler, self.port)
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        """Down: connections to the port are refused until start(), held long polls are cut off."""
        with self.lock:  # taken under the lock: stop() may race itself (a test's timer and its cleanup)
            self._down = True
            self.config_changed.notify_all()
            server, self._server = self._server, None
        close_server(server)

    def restart(self) -> None:
        """A restart of a server that keeps nothing: every instance is forgotten."""
        with self.lock:
            self.instances.clear()

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def hosts(self, service: str, *, group: str = "DEFAULT_GROUP", namespace: str = "public") -> list[StoredInstance]:
        with self.lock:
            self._expire()
            return [
                i for i in self.instances.values() if (i.namespace, i.group, i.service) == (namespace, group, service)
            ]

    def publish(
        self, data_id: str, content: str, *, group: str = "DEFAULT_GROUP", type: str | None = None, namespace: str = ""
    ) -> None:
        """As an operator publishing in the console; the type defaults from the dataId's extension."""
        with self.lock:
            guessed = _TYPES.get(data_id.rsplit(".", 1)[-1], "text") if "." in data_id else "text"
            self.configs[(_namespace(namespace), group, data_id)] = StoredConfig(content, type or guessed)
            self.config_changed.notify_all()

    def remove(self, data_id: str, *, group: str = "DEFAULT_GROUP", namespace: str = "") -> None:
        with self.lock:
            self.configs.pop((_namespace(namespace), group, data_id), None)
            self.config_changed.notify_all()

    def requests_to(self, method: str, path_end: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.method == method and r.path.endswith(path_end)]

    # -- protocol ----------------------------------------------------------------------------

    def _expire(self) -> None:
        now = time.monotonic()
        for key, instance in list(self.instances.items()):
            if not instance.ephemeral:
                continue
            silent = now - instance.last_beat
            if silent > instance.timeout("preserved.ip.delete.timeout", DEFAULT_DELETE_TIMEOUT_MS):
                del self.instances[key]
            elif silent > instance.timeout("preserved.heart.beat.timeout", DEFAULT_BEAT_TIMEOUT_MS):
                instance.healthy = False

    def handle(self, request: Received, headers) -> tuple[int, str | dict]:
        with self.lock:
            self.received.append(request)
            self._expire()
            path = request.path
            if path.startswith("/nacos/v2/"):
                if self.version == "3.1":
                    return 410, {"code": 40000, "message": "Current API will be deprecated", "data": None}
                return (501, "no such api") if self.version == "3.2" else (404, _spring(404, "Not Found", path))
            if path.startswith("/nacos/v1/") and self.version == "3.2":
                return 501, "no such api"
            if path.startswith("/nacos/v3/") and self.version == "2.x":
                return 404, _spring(404, "Not Found", path)
            if path in ("/nacos/v1/auth/login", "/nacos/v3/auth/user/login"):
                return self._login(request)
            if self.credentials and not self._valid_token(request, headers):
                return 403, _spring(403, "Forbidden", path, "user not found!")
            if (request.method, path) == ("POST", "/nacos/v1/cs/configs/listener"):
                return self._listen(request, headers)
            routes = {
                ("POST", "/nacos/v1/ns/instance"): self._register,
                ("DELETE", "/nacos/v1/ns/instance"): self._deregister,
                ("PUT", "/nacos/v1/ns/instance/beat"): self._beat_v1,
                ("GET", "/nacos/v1/ns/instance/list"): self._list_v1,
                ("POST", "/nacos/v3/client/ns/instance"): self._register_or_beat_v3,
                ("DELETE", "/nacos/v3/client/ns/instance"): self._deregister,
                ("GET", "/nacos/v3/client/ns/instance/list"): self._list_v3,
                ("GET", "/nacos/v1/cs/configs"): self._read_config_v1,
                ("POST", "/nacos/v1/cs/configs"): self._publish_config,
                ("GET", "/nacos/v3/client/cs/config"): self._read_config_v3,
            }
            route = routes.get((request.method, path))
            if route is None:
                return 404, _spring(404, "Not Found", path)
            return route(request)

    def _login(self, request: Received) -> tuple[int, dict]:
        if request.method != "POST":
            return 405, _spring(405, "Method Not Allowed", request.path)
        given = (request.form.get("username"), request.form.get("password"))  # the body only, as Nacos reads it
        if self.credentials is None or given != self.credentials:
            return 403, _spring(403, "Forbidden", request.path, "unknown user!")
        token = secrets.token_urlsafe(16)
        self.tokens[token] = time.monotonic() + self.token_ttl
        return 200, {"accessToken": token, "tokenTtl": self.token_ttl, "globalAdmin": True, "username": given[0]}

    def _valid_token(self, request: Received, headers) -> bool:
        bearer = (headers.get("Authorization") or "").removeprefix("Bearer ")
        token = request.query.get("accessToken") or headers.get("accessToken") or bearer or None
        return token is not None and self.tokens.get(token, 0) > time.monotonic()

    def _key(self, params: dict[str, str]) -> tuple:
        group = params.get("groupName") or "DEFAULT_GROUP"
        service = params["serviceName"].split("@@")[-1]
        return (
            params.get("namespaceId") or "public",
            group,
            service,
            params.get("clusterName") or "DEFAULT",
            params["ip"],
            int(params["port"]),
        )

    def _register(self, request: Received) -> tuple[int, str]:
        params = request.params
        if not all(params.get(name) for name in ("serviceName", "ip", "port")):
            return 400, "caused: serviceName, ip and port are required"
        key = self._key(params)
        self.instances[key] = StoredInstance(
            *key,
            weight=float(params.get("weight", 1.0)),
            enabled=params.get("enabled", "true") == "true",
            ephemeral=params.get("ephemeral", "true") == "true",
            metadata=json.loads(params.get("metadata") or "{}"),
        )
        return 200, "ok"

    def _deregister(self, request: Received) -> tuple[int, str | dict]:
        self.instances.pop(self._key(request.params), None)
        return 200, "ok" if request.path.startswith("/nacos/v1/") else {"code": 0, "message": "success", "data": "ok"}

    def _beat_v1(self, request: Received) -> tuple[int, dict]:
        instance = self.instances.get(self._key(request.params))
        if instance is None:
            return 200, {"code": 20404, "clientBeatInterval": 5000, "lightBeatEnabled": True}
        instance.last_beat, instance.healthy = time.monotonic(), True
        interval = self.beat_interval_ms or int(instance.metadata.get("preserved.heart.beat.interval", 5000))
        return 200, {"clientBeatInterval": interval, "code": 10200, "lightBeatEnabled": True}

    def _register_or_beat_v3(self, request: Received) -> tuple[int, dict]:
        if request.query.get("heartBeat") == "true":
            instance = self.instances.get(self._key(request.params))
            if instance is None:
                return 200, {"code": 21003, "message": "instance not found", "data": None}
            instance.last_beat, instance.healthy = time.monotonic(), True
            return 200, {"code": 0, "message": "success", "data": "ok"}
        status, body = self._register(request)
        return status, {"code": 0, "message": "success", "data": body} if status == 200 else body

    def _listed(self, request: Received) -> list[dict]:
        params = request.params
        healthy_only = params.get("healthyOnly") == "true"
        return [
            i.as_host()
            for i in self.hosts(
                params["serviceName"].split("@@")[-1],
                group=params.get("groupName") or "DEFAULT_GROUP",
                namespace=params.get("namespaceId") or "public",
            )
            if i.healthy or not healthy_only
        ]

    def _list_v1(self, request: Received) -> tuple[int, dict]:
        group = request.params.get("groupName") or "DEFAULT_GROUP"
        return 200, {
            "name": f"{group}@@{request.params['serviceName']}",
            "groupName": group,
            "clusters": "",
            "cacheMillis": self.cache_millis,
            "hosts": self._listed(request),
            "lastRefTime": int(time.time() * 1000),
            "checksum": "",
            "allIPs": False,
            "reachProtectionThreshold": False,
            "valid": True,
        }

    def _list_v3(self, request: Received) -> tuple[int, dict]:
        return 200, {"code": 0, "message": "success", "data": self._listed(request)}

    # -- configuration center ----------------------------------------------------------------

    def _read_config_v1(self, request: Received):
        params = request.query
        if "dataId" not in params or "group" not in params:
            return 500, _spring(500, "Internal Server Error", request.path, "Required parameter is not present")
        if not all(_VALID_NAME.match(params[name]) for name in ("dataId", "group")):
            return 400, "caused: invalid param: dataId or group"
        if self.busy_reads:
            self.busy_reads -= 1
            return 409, "requested file is being modified, please try later."
        stored = self.configs.get((_namespace(params.get("tenant", "")), params["group"], params["dataId"]))
        if stored is None:
            return 404, "config data not exist"
        headers = {
            "Content-MD5": stored.md5,
            "Config-Type": stored.type,
            "Last-Modified": formatdate(stored.last_modified, usegmt=True),
        }
        return 200, stored.content, headers

    def _publish_config(self, request: Received):
        params = request.params
        if not all(_VALID_NAME.match(params.get(name, "")) for name in ("dataId", "group")) or not params.get(
            "content"
        ):
            return 400, "caused: dataId, group and content are required"
        self.publish(
            params["dataId"],
            params["content"],
            group=params["group"],
            type=params.get("type"),
            namespace=params.get("tenant", ""),
        )
        return 200, "true"

    def _read_config_v3(self, request: Received):
        params = request.query
        if not params.get("dataId") or not params.get("groupName"):
            return 400, "Required parameter 'dataId' or 'groupName' is not present"  # plain text, no envelope
        stored = self.configs.get((_namespace(params.get("namespaceId", "")), params["groupName"], params["dataId"]))
        if stored is None:
            return 200, {"code": 20004, "message": "resource not found", "data": None}
        data = {
            "content": stored.content,
            "md5": stored.md5,
            "contentType": stored.type,
            "lastModified": int(stored.last_modified * 1000),
            "encryptedDataKey": "",
        }
        return 200, {"code": 0, "message": "success", "data": data}

    def _listen(self, request: Received, headers):
        listening = request.form.get("Listening-Configs")
        if listening is None:
            return 400, "invalid probeModify"
        entries = [line.split(WORD) for line in listening.split(LINE) if line]
        if any(len(entry) not in (3, 4) for entry in entries):
            return 400, "invalid probeModify"
        timeout_ms = headers.get("Long-Pulling-Timeout")
        if timeout_ms is None or headers.get("Long-Pulling-Timeout-No-Hangup") == "true":
            return 200, self._changed(entries)  # the legacy short poll, or asked not to hang
        hold = max(MIN_LISTENER_HOLD_MS, int(timeout_ms) - 500) / 1000
        if self.listener_hold is not None:
            hold = min(hold, self.listener_hold)
        self.config_changed.wait_for(lambda: self._down or self._changed(entries), timeout=hold)
        if self._down:
            raise _ConnectionCut
        return 200, self._changed(entries)

    def _changed(self, entries: list[list[str]]) -> str:
        changed = []
        for data_id, group, md5, *tenant in entries:
            # The 2.x trap: its listener does not map "public" to the public namespace's "", so a
            # client sending tenant=public is told "changed" on every poll.
            if tenant == ["public"] and self.version == "2.x":
                changed.append((data_id, group, *tenant))
                continue
            stored = self.configs.get((_namespace(tenant[0] if tenant else ""), group, data_id))
            if (stored.md5 if stored else "") != md5:
                changed.append((data_id, group, *tenant))
        return "".join(quote(WORD.join(words) + LINE, safe="") for words in changed)


class _ConnectionCut(Exception):
    """The server went down while holding the request: the client sees the connection close."""


def _namespace(tenant: str) -> str:
    return tenant or "public"


def _spring(status: int, error: str, path: str, message: str = "") -> dict:
    return {
        "timestamp": "2026-01-01T00:00:00.000+00:00",
        "status": status,
        "error": error,
        "message": message,
        "path": path,
    }


class _Handler(BaseHTTPRequestHandler):
    nacos: FakeNacos
    protocol_version = "HTTP/1.0"  # a connection per request: stop() then cuts every client off

    def log_message(self, *args) -> None:  # quiet
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        # The server's own paths start with /nacos; the fake serves them under its context path.
        context = self.nacos.context_path.rstrip("/")
        inside = url.path.startswith(context + "/")
        request = Received(
            method=self.command,
            path="/nacos" + url.path.removeprefix(context) if inside else url.path,
            query={k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()},
            form={k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()},
            at=time.monotonic(),
            url=self.path,
            headers=dict(self.headers.items()),
        )
        try:
            if not inside:
                answer = 404, _spring(404, "Not Found", url.path)
            else:
                answer = self.nacos.handle(request, self.headers)
        except (KeyError, ValueError) as exc:
            answer = 400, f"caused: {exc}"
        except _ConnectionCut:
            self.close_connection = True
            return
        status, payload, headers = answer if len(answer) == 3 else (*answer, {})
        data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
        self.send_response(status)
        content_type = "application/json" if isinstance(payload, dict) else "text/plain;charset=UTF-8"
        self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


if __name__ == "__main__":
    # A standalone fake, for scripts/container-check.sh and the load scenarios:
    #   python -m tests.nacos.fake_nacos PORT [--config DATA_ID CONTENT]...
    # --config publishes the content (in DEFAULT_GROUP) before the first request is answered.
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.nacos.fake_nacos")
    parser.add_argument("port", type=int)
    parser.add_argument("--config", nargs=2, action="append", default=[], metavar=("DATA_ID", "CONTENT"))
    arguments = parser.parse_args()
    standalone = FakeNacos()
    standalone.port = arguments.port
    for data_id, content in arguments.config:
        standalone.publish(data_id, content)
    standalone.start()
    threading.Event().wait()
