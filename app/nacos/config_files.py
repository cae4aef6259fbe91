"""Snapshot and failover files of configs, in the Java Nacos client's layout.

Under `<root>/nacos/config/<server>_nacos/`:
- `snapshot[-tenant/<namespace>]/<group>/<dataId>`: the last content read from the server, used
  only when the server cannot be reached;
- `data/config-data[-tenant/<namespace>]/<group>/<dataId>`: a failover file an operator places by
  hand; when present it wins over the server.
The public namespace has no `-tenant` part, as in the Java client.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from app.nacos.config_types import ConfigKey

# One path component: what Nacos allows in a dataId, group or namespace, and never "." or "..".
_COMPONENT = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._:-]+$")


class ConfigFiles:
    def __init__(self, root: Path, *, server: str, namespace: str) -> None:
        # "127.0.0.1:8848" -> "127.0.0.1_8848": a name that is one directory on every system.
        base = Path(root) / "nacos" / "config" / f"{re.sub(r'[^A-Za-z0-9._-]', '_', server)}_nacos"
        if namespace in ("", "public"):
            self._snapshots, self._failovers = base / "snapshot", base / "data" / "config-data"
        else:
            _component(namespace)
            self._snapshots = base / "snapshot-tenant" / namespace
            self._failovers = base / "data" / "config-data-tenant" / namespace

    def failover(self, key: ConfigKey) -> str | None:
        return _read(self._file(self._failovers, key))

    def snapshot(self, key: ConfigKey) -> str | None:
        return _read(self._file(self._snapshots, key))

    def save_snapshot(self, key: ConfigKey, content: str) -> None:
        """Written whole or not at all: a reader never sees half a snapshot."""
        path = self._file(self._snapshots, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def drop_snapshot(self, key: ConfigKey) -> None:
        self._file(self._snapshots, key).unlink(missing_ok=True)

    @staticmethod
    def _file(directory: Path, key: ConfigKey) -> Path:
        return directory / _component(key.group) / _component(key.data_id)


def _component(name: str) -> str:
    """A name that stays one directory level: a dataId like "../x" must not escape the root."""
    if not _COMPONENT.match(name):
        raise ValueError(f"{name!r} cannot name a config file")
    return name


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
