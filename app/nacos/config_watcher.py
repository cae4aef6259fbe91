"""The instance's configuration from Nacos: read at start, then watched, by one process per instance.

It runs where the registrar runs (gunicorn's master, the development server's serving process):
it reads the configs with a short timeout before the settings are validated, then watches them
(v1 long poll; on 3.2+ servers, which have no listener, a v3 read every NACOS_CONFIG_POLL_SECONDS
compared by md5). Each good configuration is published as a new version of the runtime
directory's state file, which every app of the instance follows (app/nacos/config_follower.py);
a bad one is refused whole and the last good one stays in force.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from werkzeug.serving import is_running_from_reloader

from app.nacos.client import NacosError, NacosUnavailable
from app.nacos.config_files import ConfigFiles
from app.nacos.config_follower import LIVE_SETTINGS, WholeSettings, changed_settings
from app.nacos.config_layer import ConfigRejected, build_layer, config_keys, settings_with_layer, warn_shadowed
from app.nacos.config_types import ConfigContent, ConfigKey, Origin
from app.nacos.process import flask_run_options
from app.nacos.registrar import Registrar, client_from_settings
from app.nacos.settings import NacosSettings
from app.nacos.state import announce, new_runtime_dir, publish_config_state
from app.settings_group import ConfigError

log = structlog.get_logger(__name__)

LISTEN_HOLD_SECONDS = 30.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
_SETTING_IN_ERROR = re.compile(r"^([A-Z][A-Z0-9_]*)\b")  # ConfigError names the setting first


class ConfigClient(Protocol):
    api: str | None

    def get_config(self, key: ConfigKey) -> ConfigContent: ...

    def listen(self, known: dict[ConfigKey, str], *, hold_seconds: float = ...) -> list[ConfigKey] | None: ...


class LocalFiles(Protocol):
    """app/nacos/config_files.py's ConfigFiles: the Java client's snapshot and failover files."""

    def failover(self, key: ConfigKey) -> str | None: ...

    def snapshot(self, key: ConfigKey) -> str | None: ...

    def save_snapshot(self, key: ConfigKey, content: str) -> None: ...

    def drop_snapshot(self, key: ConfigKey) -> None: ...


# -- reading -------------------------------------------------------------------------------------


def read_config(key: ConfigKey, *, client: ConfigClient, files: LocalFiles) -> ConfigContent:
    """A failover file an operator placed wins; else the server's, kept as the snapshot.
    Raises NacosError (NacosUnavailable: the server cannot be reached)."""
    failover = files.failover(key)
    if failover is not None:
        return _local(key, failover, origin="failover")
    content = client.get_config(key)
    if content.content is None:
        files.drop_snapshot(key)
    else:
        files.save_snapshot(key, content.content)
    return content


def initial_contents(
    keys: list[ConfigKey], *, client: ConfigClient, files: LocalFiles, timeout: float
) -> tuple[list[ConfigContent], str | None]:
    """Each key's content for the start, and the API in use (None: the server was not reached).

    Within `timeout` in all, whatever the server does (refuses connections, or accepts and never
    answers): the keys the server has not answered by then come from their snapshots, logged, so
    that a start never waits longer on Nacos.
    """
    answered: dict[ConfigKey, ConfigContent] = {}
    gave_up = threading.Event()

    def read_from_the_server() -> None:
        for key in keys:
            try:
                answered[key] = read_config(key, client=client, files=files)
            except NacosUnavailable as exc:
                if not gave_up.is_set():  # else said already
                    log.warning("nacos unreachable at start: configuration from the snapshots", error=str(exc))
                return
            except NacosError as exc:  # refused (auth): the snapshot is for an unreachable server only
                log.error("nacos refused a config at start", data_id=key.data_id, group=key.group, error=str(exc))
                answered[key] = ConfigContent(key, None, "", None, None, origin="absent")

    reader = threading.Thread(target=read_from_the_server, name="nacos-config-start", daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        gave_up.set()
        log.warning("nacos did not answer in time at start: configuration from the snapshots", seconds=timeout)
    answered = dict(answered)  # what came in time; a late answer only refreshes a snapshot
    contents = [answered.get(key) or _from_local_files(key, files) for key in keys]
    reachable = len(answered) == len(keys)
    if not reachable and all(content.origin == "absent" for content in contents):
        log.warning("nacos unreachable and no snapshot: starting on the local settings alone")
    return contents, client.api if reachable else None


def _from_local_files(key: ConfigKey, files: LocalFiles) -> ConfigContent:
    failover = files.failover(key)
    text = failover if failover is not None else files.snapshot(key)
    if text is None:
        return ConfigContent(key, None, "", None, None, origin="absent")
    origin: Origin = "failover" if failover is not None else "snapshot"
    log.info("config read from a local file", data_id=key.data_id, group=key.group, origin=origin)
    return _local(key, text, origin=origin)


def _local(key: ConfigKey, content: str, *, origin: Origin) -> ConfigContent:
    # Our md5 (the server's is unknown here): the listener then reports any difference from it.
    md5 = hashlib.md5(content.encode(), usedforsecurity=False).hexdigest()
    return ConfigContent(key, content, md5, None, None, origin=origin)


# -- validating and publishing -------------------------------------------------------------------


class ConfigPublisher:
    """Turns contents into a validated configuration and publishes it; keeps the last good one."""

    def __init__(self, *, directory: Path, local: WholeSettings, default_format: str = "yaml") -> None:
        self.default_format = default_format  # NACOS_CONFIG_FILE_EXTENSION: for a config named `${prefix}`
        self.directory = directory
        self.started_with = local  # what the processes started with: restart-only settings stay so
        self.version = 0
        self.good: dict[str, Any] | None = None
        self.settings = local  # the settings in force (the local ones until a configuration is good)
        self.api: str | None = None

    def publish(self, contents: list[ConfigContent], *, at_start: bool = False) -> WholeSettings | None:
        """The new settings, published; None when refused (the last good configuration stays)."""
        try:
            layer = build_layer(contents, default_format=self.default_format)
        except ConfigRejected as exc:
            self._refuse(key=str(exc.key), setting=None, message=exc.message)
            return None
        try:
            settings = settings_with_layer(layer)
        except ConfigError as exc:
            message = str(exc).removeprefix("Configuration error: ")
            match = _SETTING_IN_ERROR.match(message)
            setting = match[1] if match else None
            source = layer.sources.get(setting) if setting else None
            self._refuse(key=str(source) if source else None, setting=setting, message=message)
            return None
        if at_start:
            self.started_with = settings
            warn_shadowed(layer)
        pending = sorted(changed_settings(self.started_with, settings) - LIVE_SETTINGS)
        newly_pending = set(pending) - set((self.good or {}).get("pending", []))
        if newly_pending:
            log.warning("configuration from nacos takes effect at the next restart", settings=sorted(newly_pending))
        self.version += 1
        self.settings = settings
        self.good = {
            "version": self.version,
            "api": self.api,
            "contents": [content.to_json() for content in contents],
            "settings": layer.settings,
            "app_values": layer.app_values,
            "rejected": None,
            "pending": pending,
            "updated_at": time.time(),
        }
        publish_config_state(self.directory, self.good)
        return settings

    def _refuse(self, *, key: str | None, setting: str | None, message: str) -> None:
        log.error(
            "configuration from nacos refused: the last good one stays", config=key, setting=setting, error=message
        )
        rejected = {"key": key, "setting": setting, "message": message, "at": time.time()}
        # The last good configuration, unchanged (same version: nothing for the workers to apply).
        publish_config_state(self.directory, {**(self.good or self._empty()), "rejected": rejected})

    def _empty(self) -> dict[str, Any]:
        return {"version": 0, "api": self.api, "contents": [], "settings": {}, "app_values": {}, "pending": []}


# -- watching ------------------------------------------------------------------------------------


class ConfigWatcher:
    """Watches the keys; publishes each change through the publisher; tells the registration."""

    def __init__(
        self,
        *,
        client: ConfigClient,
        files: LocalFiles,
        publisher: ConfigPublisher,
        contents: list[ConfigContent],
        poll_seconds: float,
        on_registration_change: Callable[[WholeSettings], None] | None = None,
        hold_seconds: float = LISTEN_HOLD_SECONDS,
    ) -> None:
        self.client = client
        self.files = files
        self.publisher = publisher
        self.contents = {content.key: content for content in contents}
        self.poll_seconds = poll_seconds
        self.hold_seconds = hold_seconds
        self.on_registration_change = on_registration_change
        self.consecutive_failures = 0
        self._polling = False  # the server has no listener (3.2+)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nacos-config-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.watch_once()
            except NacosError as exc:
                self.consecutive_failures += 1
                if self.consecutive_failures == 1:
                    log.warning("nacos configuration unreachable; retrying in the background", error=str(exc))
                delay = BACKOFF_FIRST_SECONDS * 2 ** (self.consecutive_failures - 1)
                self._stopping.wait(min(delay, BACKOFF_CAP_SECONDS, self.poll_seconds))
            else:
                if self.consecutive_failures:
                    log.info("nacos configuration reachable again")
                self.consecutive_failures = 0

    def watch_once(self) -> None:
        """One long poll (or, without a listener, one round of reads after the poll interval)."""
        if not self._polling:
            known = {key: content.md5 for key, content in self.contents.items() if content.origin != "failover"}
            changed = self.client.listen(known, hold_seconds=self.hold_seconds)
            if changed is None:
                self._polling = True
                log.info("nacos has no configuration listener: polling", seconds=self.poll_seconds)
            else:
                self._read(changed)
                return
        if self._stopping.wait(self.poll_seconds):
            return
        self._read(list(self.contents))

    def _read(self, keys: list[ConfigKey]) -> None:
        fresh = {key: read_config(key, client=self.client, files=self.files) for key in keys if key in self.contents}
        changed = {key: content for key, content in fresh.items() if content.md5 != self.contents[key].md5}
        self.publisher.api = self.client.api
        if not changed:
            return
        self.contents.update(changed)
        log.info("configuration changed in nacos", configs=[str(key) for key in changed])
        before = self.publisher.settings
        settings = self.publisher.publish(list(self.contents.values()))
        if settings is None:
            return
        logging.getLogger().setLevel(settings.logging.LOG_LEVEL)  # this process follows it too
        if self.on_registration_change is None:
            return
        if {"NACOS_WEIGHT", "NACOS_METADATA"} & changed_settings(before, settings):
            self.on_registration_change(settings)


def registration_updater(registrar) -> Callable[[WholeSettings], None]:
    """NACOS_WEIGHT / NACOS_METADATA changed: the registrar updates the instance in place."""

    def update(settings: WholeSettings) -> None:
        registrar.update(weight=settings.nacos.NACOS_WEIGHT, metadata=settings.nacos.NACOS_METADATA)

    return update


# -- where the registrar runs ---------------------------------------------------------------------


@dataclass
class ConfigStart:
    """The configuration from Nacos read at start and published; watching starts with the registrar."""

    settings: WholeSettings  # the local settings with the Nacos layer (or alone, when it was refused)
    directory: Path  # the runtime directory the followers read
    watcher: ConfigWatcher

    def watch(self, registrar: Registrar | None) -> None:
        if registrar is not None:
            self.watcher.on_registration_change = registration_updater(registrar)
        self.watcher.start()

    def close(self) -> None:
        """At process exit: stop watching and remove the runtime directory (the registrar's too)."""
        self.watcher.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def local_files(settings: NacosSettings) -> ConfigFiles:
    """The snapshot and failover files, under NACOS_CONFIG_CACHE_DIR, for the first server address
    as configured (`127.0.0.1:8848` is the directory `127.0.0.1_8848_nacos`, as the Java client's)."""
    server = settings.NACOS_SERVER_ADDR[0].split("://", 1)[-1].rstrip("/")
    return ConfigFiles(Path(settings.NACOS_CONFIG_CACHE_DIR), server=server, namespace=settings.NACOS_NAMESPACE)


def start_configuration(settings: WholeSettings) -> ConfigStart | None:
    """Where the registrar will run, before anything uses the settings: read the configs (a few
    seconds at most), validate the settings with them and publish them for the apps to follow."""
    nacos = settings.nacos
    if not nacos.config_enabled:
        return None
    directory = new_runtime_dir()
    announce(directory)
    client, files = client_from_settings(nacos), local_files(nacos)
    keys = config_keys(nacos, profile=settings.app.FLASK_ENV)
    contents, api = initial_contents(keys, client=client, files=files, timeout=nacos.NACOS_CONFIG_START_TIMEOUT)
    publisher = ConfigPublisher(directory=directory, local=settings, default_format=nacos.NACOS_CONFIG_FILE_EXTENSION)
    publisher.api = api
    publisher.publish(contents, at_start=True)
    watcher = ConfigWatcher(
        client=client, files=files, publisher=publisher, contents=contents, poll_seconds=nacos.NACOS_CONFIG_POLL_SECONDS
    )
    return ConfigStart(settings=publisher.settings, directory=directory, watcher=watcher)


def start_development_configuration(settings: WholeSettings, *, reloader: bool) -> ConfigStart | None:
    """For `python run.py` and `flask run`, before the app is built: read the configuration from
    Nacos (a few seconds at most) and publish it for the app, which starts with it and follows it.

    Only in the process that serves and registers: the reloader's watcher just watches files, and
    the child it starts (again after each code change) reads the configuration afresh.
    """
    if reloader and not is_running_from_reloader():
        return None
    return start_configuration(settings)


def start_flask_run_configuration(settings: WholeSettings) -> ConfigStart | None:
    """When `flask run` is building the app: start_development_configuration; else None."""
    options = flask_run_options()
    return None if options is None else start_development_configuration(settings, reloader=options[1])
