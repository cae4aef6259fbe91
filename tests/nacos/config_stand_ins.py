"""Small stand-ins for the configuration client, its local files and the layering, so that the
watcher and the followers are tested on their own, in this process and in a gunicorn started with
`stand_in_gunicorn` (the stand-ins installed in its master, which its workers inherit).

The stand-in server is a directory: a config is a file named by its dataId, its md5 is the file's.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from app.config import SETTING_NAMES, load_settings
from app.nacos import config_follower
from app.nacos.client import NacosUnavailable
from app.nacos.config_follower import ConfigParts
from app.nacos.config_types import ConfigContent, ConfigKey
from tests.processes import BIN

SERVER_VARIABLE = "STAND_IN_CONFIG_SERVER"  # the directory holding the configs
NO_LISTENER_VARIABLE = "STAND_IN_NO_LISTENER"  # "1": a 3.2+ server (listen returns None)
HOLD_SECONDS = 2.0


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class DirectoryServer:
    """A client with get_config / listen over a directory (None: the server cannot be reached)."""

    def __init__(self, directory: Path | None, *, listener: bool = True, hold_seconds: float = HOLD_SECONDS) -> None:
        self.directory = directory
        self.listener = listener
        self.hold_seconds = hold_seconds
        self.api = "v1" if listener else "v3"
        self.reads: list[ConfigKey] = []

    def get_config(self, key: ConfigKey) -> ConfigContent:
        if self.directory is None:
            raise NacosUnavailable("connection refused")
        self.reads.append(key)
        path = self.directory / key.data_id
        if not path.exists():
            return ConfigContent(key, None, "", None, None)
        text = path.read_text()
        return ConfigContent(key, text, md5(text), "yaml", path.stat().st_mtime)

    def listen(self, known: dict[ConfigKey, str], *, hold_seconds: float = 30) -> list[ConfigKey] | None:
        if not self.listener:
            return None
        if self.directory is None:
            raise NacosUnavailable("connection refused")
        deadline = time.monotonic() + min(hold_seconds, self.hold_seconds)
        while time.monotonic() < deadline:
            changed = [key for key, digest in known.items() if self.get_config(key).md5 != digest]
            if changed:
                return changed
            time.sleep(0.05)
        return []


class LocalFiles:
    """ConfigFiles' interface: `failover/<dataId>` placed by hand, `snapshot/<dataId>` kept by us."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def failover(self, key: ConfigKey) -> str | None:
        return self._read(self.root / "failover" / key.data_id)

    def snapshot(self, key: ConfigKey) -> str | None:
        return self._read(self.root / "snapshot" / key.data_id)

    def save_snapshot(self, key: ConfigKey, content: str) -> None:
        (self.root / "snapshot").mkdir(parents=True, exist_ok=True)
        (self.root / "snapshot" / key.data_id).write_text(content)

    def drop_snapshot(self, key: ConfigKey) -> None:
        (self.root / "snapshot" / key.data_id).unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> str | None:
        return path.read_text() if path.exists() else None


class Rejected(Exception):
    def __init__(self, key: ConfigKey, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class Layer:
    def __init__(self, settings: dict, sources: dict, app_values: dict) -> None:
        self.settings, self.sources, self.app_values = settings, sources, app_values


def build_layer(contents: list[ConfigContent]) -> Layer:
    settings: dict[str, Any] = {}
    sources: dict[str, ConfigKey] = {}
    app_values: dict[str, Any] = {}
    for content in contents:
        if content.content is None:
            continue
        try:
            values = yaml.safe_load(content.content) or {}
        except yaml.YAMLError:
            raise Rejected(content.key, "not valid YAML") from None
        if not isinstance(values, dict):
            raise Rejected(content.key, "not a map")
        for name, value in _flatten(values).items():
            if name.upper() in SETTING_NAMES:
                settings[name.upper()] = value
                sources[name.upper()] = content.key
            else:
                app_values[name] = value
    return Layer(settings, sources, app_values)


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict) and not str(name).upper().endswith("METADATA"):
            flat |= _flatten(value, f"{prefix}{name}_")
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def load_with_layer(*, nacos: dict[str, Any]) -> Any:
    """The environment wins over Nacos (the tests run without `.env`)."""
    environment = {name: value for name, value in os.environ.items() if name in SETTING_NAMES}
    return load_settings({**nacos, **environment})


APP_VALUES: list[dict[str, Any]] = []  # what replace_app_values was given, in order


def parts(server: DirectoryServer, files: LocalFiles) -> ConfigParts:
    return ConfigParts(
        client=lambda _settings: server,
        local_files=lambda _settings: files,
        config_keys=lambda settings, *, profile: [ConfigKey(f"{settings.config_prefix}.yaml", settings.config_group)],
        build_layer=build_layer,
        rejected=Rejected,
        load_settings=load_with_layer,
        replace_app_values=APP_VALUES.append,
    )


def install() -> None:
    """In a gunicorn master: the server is the directory SERVER_VARIABLE names."""
    directory = Path(os.environ[SERVER_VARIABLE])
    server = DirectoryServer(directory, listener=os.environ.get(NO_LISTENER_VARIABLE) != "1")
    config_follower.PARTS = parts(server, LocalFiles(directory.parent / "local"))


def stand_in_gunicorn(port: int, *, workers: int = 4) -> list[str]:
    """tests.processes.gunicorn's command, the stand-ins installed first."""
    run = f"import sys; sys.argv[0] = {str(BIN / 'gunicorn')!r}; " + (
        "from tests.nacos.config_stand_ins import install; install(); from gunicorn.app.wsgiapp import run; run()"
    )
    return [sys.executable, "-c", run, "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "app:create_app()"]
