"""The settings of the Nacos package: the only ones anything in app/nacos reads."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from app.settings_group import CommaList, SettingsGroup

# host:port, with an optional http(s):// before it.
_HOST_PORT = re.compile(r"^(?:https?://)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})/?$")


class NacosSettings(SettingsGroup):
    NACOS_ENABLED: bool = True
    NACOS_SERVER_ADDR: CommaList = ["127.0.0.1:8848"]
    NACOS_NAMESPACE: str = Field("public", min_length=1, max_length=128)
    NACOS_GROUP: str = Field("DEFAULT_GROUP", min_length=1, max_length=128, pattern=r"^[^@\s]+$")
    NACOS_SERVICE_NAME: str = Field("flask-api", min_length=1, max_length=255, pattern=r"^[^@\s]+$")
    NACOS_SERVICE_IP: IPv4Address | IPv6Address | None = None
    NACOS_NETWORK_INTERFACE: str | None = None
    NACOS_SERVICE_PORT: int = Field(5000, ge=1, le=65535)
    NACOS_HEARTBEAT_INTERVAL: float = Field(5, gt=0, le=300)
    NACOS_DEREGISTER_TIME: float = Field(10, gt=0, le=86400)
    NACOS_USERNAME: str | None = None
    NACOS_PASSWORD: SecretStr | None = None
    NACOS_CLUSTER_NAME: str = Field("DEFAULT", min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    NACOS_WEIGHT: float = Field(1.0, ge=0, le=10000)
    NACOS_METADATA: dict[str, str] = {}
    NACOS_EPHEMERAL: bool = True
    NACOS_FAIL_FAST: bool = False
    NACOS_API: Literal["auto", "v1", "v3"] = "auto"
    NACOS_TIMEOUT: float = Field(3, gt=0, le=60)
    NACOS_DRAIN_SECONDS: float = Field(5, ge=0, le=300)
    # The servers' path prefix; "/" for servers at the root.
    NACOS_CONTEXT_PATH: str = Field("/nacos", pattern=r"^(/|(/[A-Za-z0-9._~-]+)+)$")

    # Configuration from Nacos (Spring Cloud Alibaba's dataIds; README "Configuration from Nacos").
    NACOS_CONFIG_ENABLED: bool | None = None  # None: on when NACOS_ENABLED is
    NACOS_CONFIG_SHARED: CommaList = []  # dataId or dataId@group, loaded first, in order
    NACOS_CONFIG_PREFIX: str | None = Field(None, min_length=1, max_length=255)  # None: NACOS_SERVICE_NAME
    NACOS_CONFIG_FILE_EXTENSION: Literal["yaml", "yml", "properties", "json"] = "yaml"
    NACOS_CONFIG_GROUP: str | None = Field(None, min_length=1, max_length=128)  # None: NACOS_GROUP
    NACOS_CONFIG_POLL_SECONDS: float = Field(10, gt=0, le=3600)  # 3.2+ servers, which have no listener
    NACOS_CONFIG_START_TIMEOUT: float = Field(3, gt=0, le=30)  # the most a start waits for Nacos
    NACOS_CONFIG_CACHE_DIR: str = "instance"  # snapshots and failover files, in the Java client's layout

    @property
    def config_enabled(self) -> bool:
        return self.NACOS_ENABLED if self.NACOS_CONFIG_ENABLED is None else self.NACOS_CONFIG_ENABLED

    @property
    def config_prefix(self) -> str:
        return self.NACOS_CONFIG_PREFIX or self.NACOS_SERVICE_NAME

    @property
    def config_group(self) -> str:
        return self.NACOS_CONFIG_GROUP or self.NACOS_GROUP

    @field_validator("NACOS_SERVER_ADDR")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        if not addresses:
            raise ValueError("at least one host:port is required")
        for address in addresses:
            match = _HOST_PORT.match(address)
            if not match or not 1 <= int(match["port"]) <= 65535:
                raise ValueError(f"{address!r} is not host:port")
        return addresses

    @model_validator(mode="after")
    def _consistent(self) -> NacosSettings:
        if self.NACOS_DEREGISTER_TIME <= self.NACOS_HEARTBEAT_INTERVAL:
            raise ValueError("NACOS_DEREGISTER_TIME must be longer than NACOS_HEARTBEAT_INTERVAL")
        if bool(self.NACOS_USERNAME) != bool(self.NACOS_PASSWORD):
            raise ValueError("NACOS_USERNAME and NACOS_PASSWORD go together")
        return self
