"""What the configuration client, the layering of settings and the watcher pass to each other."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

# Where a content came from: the server, the last snapshot of it (server unreachable), a failover
# file an operator placed (wins over the server), or nowhere (the config does not exist).
Origin = Literal["server", "snapshot", "failover", "absent"]


@dataclass(frozen=True, order=True)
class ConfigKey:
    data_id: str
    group: str

    def __str__(self) -> str:
        return f"{self.data_id}@{self.group}"


@dataclass(frozen=True)
class ConfigContent:
    key: ConfigKey
    content: str | None  # None: the config does not exist (which is normal)
    md5: str  # the server's md5 (with the encryption plugin it is not ours); "" when absent
    type: str | None  # Config-Type / contentType: yaml, properties, json, text, ...; None when unknown
    last_modified: float | None  # seconds since the epoch, when the server says
    origin: Origin = "server"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "key": {"data_id": self.key.data_id, "group": self.key.group}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfigContent:
        return cls(**{**data, "key": ConfigKey(**data["key"])})
