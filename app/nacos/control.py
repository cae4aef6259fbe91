"""What /monitoring/nacos shows and does: this instance's registration, other services' instances, the
configuration read from Nacos."""

from __future__ import annotations

import time
from typing import Any

from app.core.errors import RETRY_AFTER_SECONDS, APIError
from app.extensions import current_discovery, current_settings
from app.nacos.config_layer import ConfigRejected, NacosLayer, build_layer, setting_sources
from app.nacos.config_types import ConfigContent
from app.nacos.discovery import NoInstanceAvailable
from app.nacos.state import read_config_state, read_state, runtime_dir, write_desired

CONFIRM_SECONDS = 10.0  # how long a manual register/deregister waits for the registrar's word


def service_status() -> dict[str, Any]:
    settings = current_settings().nacos
    state = read_state() or {}
    return {
        "enabled": settings.NACOS_ENABLED,
        "service_name": settings.NACOS_SERVICE_NAME,
        "group": settings.NACOS_GROUP,
        "namespace": settings.NACOS_NAMESPACE,
        "cluster": settings.NACOS_CLUSTER_NAME,
        "ip": state.get("ip"),
        "port": state.get("port"),
        "metadata": state.get("metadata", {}),
        "registered": state.get("registered", False),
        "registrar": "running" if state else "not running",
        "server": state.get("server"),
        "api": state.get("api"),
        "last_heartbeat_at": state.get("last_heartbeat_at"),
        "last_heartbeat_result": state.get("last_heartbeat_result"),
        "consecutive_failures": state.get("consecutive_failures", 0),
        "last_error": state.get("last_error"),
    }


def set_registration(*, registered: bool) -> dict[str, Any]:
    """Ask the registrar to register or deregister, and wait for it to confirm. Idempotent."""
    directory = runtime_dir()
    if not current_settings().nacos.NACOS_ENABLED:
        raise APIError(503, "Nacos is disabled (NACOS_ENABLED=false).")
    if directory is None or read_state() is None:
        raise APIError(503, "No registrar runs for this service (see the README's production command).")
    write_desired(directory, registered=registered)
    deadline = time.monotonic() + CONFIRM_SECONDS
    while time.monotonic() < deadline:
        if read_state().get("registered") is registered:
            return service_status()
        time.sleep(0.05)
    raise APIError(
        503, "Nacos did not confirm in time; the registrar keeps trying.", headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


def service_instances(*, service_name: str, healthy_only: bool) -> dict[str, Any]:
    discovery = current_discovery()
    if discovery is None:
        raise APIError(503, "Nacos is disabled (NACOS_ENABLED=false).")
    try:
        # A lookup, not a call: cached, but not kept fresh for whoever asked.
        instances = discovery.instances(service_name, healthy_only=healthy_only, keep_fresh=False)
    except NoInstanceAvailable as exc:
        raise APIError(503, "Nacos is unavailable.", headers={"Retry-After": RETRY_AFTER_SECONDS}) from exc
    return {
        "service_name": service_name,
        "group": discovery.group,
        "instances": [
            {
                "ip": i.ip,
                "port": i.port,
                "weight": i.weight,
                "healthy": i.healthy,
                "enabled": i.enabled,
                "cluster": i.cluster,
                "metadata": i.metadata,
            }
            for i in instances
        ],
    }


def config_status() -> dict[str, Any]:
    """The configs in force (names, md5s, types, where they came from: never their contents), where
    each setting comes from (names only), and the changes waiting for a restart or refused."""
    settings = current_settings()
    state = read_config_state() or {}
    try:
        contents = [ConfigContent.from_json(item) for item in state.get("contents", [])]
        layer = build_layer(contents, default_format=settings.nacos.NACOS_CONFIG_FILE_EXTENSION)
    except (ConfigRejected, KeyError, TypeError):  # the watcher publishes good contents only; a hand-edited file?
        contents, layer = [], NacosLayer()
    return {
        "enabled": settings.nacos.config_enabled,
        "watcher": "running" if state else "not running",
        "api": state.get("api"),
        "version": state.get("version"),
        "updated_at": state.get("updated_at"),
        "configs": [
            {
                "data_id": content.key.data_id,
                "group": content.key.group,
                "md5": content.md5,
                "type": content.type,
                "origin": content.origin,
                "last_modified": content.last_modified,
            }
            for content in contents
        ],
        "sources": setting_sources(settings, layer),
        "pending": state.get("pending", []),
        "rejected": state.get("rejected"),
    }
