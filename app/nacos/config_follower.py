"""Every process that answers requests follows the configuration the instance's one watcher publishes.

The watcher (app/nacos/config_watcher.py) runs where the registrar runs, reads Nacos, validates
and publishes the configuration in force as a file of the runtime directory. Each app (a gunicorn
worker, the development server) looks at that file about once a second from a thread of its own,
never on the request path and never asking Nacos, and applies a new version: the live settings
(LIVE_SETTINGS) take effect at once, any other difference waits for the next restart (pending),
never half-applied.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import structlog
from flask import Flask

from app.core.web import update_cors
from app.extensions import SETTINGS
from app.nacos import app_config
from app.nacos.config_layer import RATE_LIMIT_SETTINGS, NacosLayer, settings_with_layer
from app.nacos.state import CONFIG_STATE_FILE, read_config_state, runtime_dir
from app.settings_group import ConfigError

log = structlog.get_logger(__name__)

# app.config.Settings: the whole settings, which this package reads only as the app holds them and
# builds only through app/nacos/config_layer.py (the one module of the package that imports them).
WholeSettings = Any

FOLLOW_INTERVAL_SECONDS = 1.0

# What takes effect without a restart. The limits are read per request, the token per scrape, the
# origins and the log level are swapped in below; the registration's weight and metadata are the
# watcher's (Registrar.update). Everything else (database, secrets, server, the limiter's storage
# and whether it limits at all) is built once at start: a change waits for the next restart.
LIVE_SETTINGS = frozenset(
    {"LOG_LEVEL", "CORS_ORIGINS", "METRICS_TOKEN", "NACOS_WEIGHT", "NACOS_METADATA", *RATE_LIMIT_SETTINGS}
)


def published_settings() -> WholeSettings | None:
    """create_app's settings when the instance's watcher publishes the configuration (else None)."""
    state = read_config_state()
    return settings_from_state(state) if state is not None else None


# -- comparing settings --------------------------------------------------------------------------


def _groups(settings: WholeSettings) -> dict[str, Any]:
    """settings.app, settings.web, ...: each group of settings by its name."""
    return {name: getattr(settings, name) for name in type(settings).model_fields}


def setting_values(settings: WholeSettings) -> dict[str, Any]:
    """Every setting by its name, as validated."""
    return {name: getattr(group, name) for group in _groups(settings).values() for name in type(group).model_fields}


def changed_settings(old: WholeSettings, new: WholeSettings) -> set[str]:
    old_values, new_values = setting_values(old), setting_values(new)
    return {name for name, value in new_values.items() if old_values[name] != value}


def with_live_settings(current: WholeSettings, new: WholeSettings) -> WholeSettings:
    """`current` with the live settings of `new`; the rest (and the signing keys) stay as they are."""
    updates: dict[str, Any] = {}
    for name, group in _groups(current).items():
        new_group = getattr(new, name)
        live = {field: getattr(new_group, field) for field in type(group).model_fields if field in LIVE_SETTINGS}
        if live:
            updates[name] = group.model_copy(update=live)
    return current.model_copy(update=updates)


def settings_from_state(state: dict[str, Any]) -> WholeSettings:
    """The settings with the published layer: the environment and `.env` as at start, Nacos between them."""
    return settings_with_layer(NacosLayer(settings=state.get("settings") or {}))


# -- the follower --------------------------------------------------------------------------------


class ConfigFollower:
    """Applies each new version of the published configuration to one app."""

    def __init__(
        self,
        app: Flask,
        *,
        directory: Path,
        version: int,
        interval: float = FOLLOW_INTERVAL_SECONDS,
    ) -> None:
        self.app = app
        self.directory = directory
        self.version = version
        self.pending: set[str] = set()
        self.interval = interval
        self._seen_mtime_ns = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nacos-config-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.check()
            except Exception:  # a bad file must not end the thread: the next version may be good
                log.exception("could not apply the published configuration")

    def check(self) -> None:
        """Apply the file's version if it is new (a stat per call while nothing changes)."""
        try:
            mtime_ns = (self.directory / CONFIG_STATE_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime_ns == self._seen_mtime_ns:
            return
        self._seen_mtime_ns = mtime_ns
        state = read_config_state(self.directory)
        if state is None or state.get("version", 0) <= self.version:
            return
        self.apply(state)

    def apply(self, state: dict[str, Any]) -> None:
        current: WholeSettings = self.app.extensions[SETTINGS]
        try:
            new = settings_from_state(state)
        except ConfigError as exc:  # the watcher validated it; only this process's environment differs
            log.error("configuration from nacos not applied", version=state.get("version"), error=str(exc))
            return
        changed = changed_settings(current, new)
        live = changed & LIVE_SETTINGS
        updated = with_live_settings(current, new)
        self.app.extensions[SETTINGS] = updated  # one assignment: a request sees the old or the new
        if "LOG_LEVEL" in live:
            logging.getLogger().setLevel(updated.logging.LOG_LEVEL)
        if "CORS_ORIGINS" in live:
            update_cors(self.app, updated)
        app_config.replace(state.get("app_values") or {})
        self.pending = changed - LIVE_SETTINGS
        self.version = state["version"]
        log.info(
            "configuration from nacos applied",
            version=self.version,
            applied=sorted(live),
            pending_restart=sorted(self.pending),
            pid=os.getpid(),
        )


def start_following(app: Flask) -> ConfigFollower | None:
    """In create_app: follow the instance's watcher, if one publishes (none: nothing to follow)."""
    directory = runtime_dir()
    state = read_config_state(directory) if directory is not None else None
    if state is None:
        return None
    app_config.replace(state.get("app_values") or {})
    follower = ConfigFollower(app, directory=directory, version=state.get("version", 0))
    follower.start()
    log.info("following the configuration from nacos", version=follower.version, pid=os.getpid())
    return follower
