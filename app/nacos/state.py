"""The registrar's state as the other processes of the instance see it, and their wishes.

One registrar runs per instance (app/nacos/process.py), often in another process than the one
answering a request: gunicorn's master, while workers answer. It publishes its state, and workers
ask it to register or deregister, through two small files in a runtime directory whose path the
environment carries (RUNTIME_DIR_VARIABLE), since processes cannot share its memory.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from prometheus_client.core import GaugeMetricFamily, Metric

RUNTIME_DIR_VARIABLE = "APP_NACOS_RUNTIME_DIR"
STATE_FILE = "state.json"
# The configuration watcher's: the configs in force, their version, the API, pending and rejected changes.
CONFIG_STATE_FILE = "nacos-config.json"
DESIRED_FILE = "desired"


@dataclass(frozen=True)
class RegistrationState:
    registrar_running: bool
    registered: bool
    draining: bool  # the instance is stopping: deregistered, finishing what it has
    consecutive_failures: int  # failed Nacos calls in a row


class Wish(NamedTuple):
    registered: bool
    written_ns: int  # when it was written, to tell a new wish from one already acted on


# -- the registrar's side ------------------------------------------------------------------------


def new_runtime_dir() -> Path:
    """A private directory for one registrar's state and the workers' wishes."""
    return Path(tempfile.mkdtemp(prefix="flask-api-nacos-"))


def announce(directory: Path) -> None:
    """Tell this process, and the workers it forks later, where the running registrar publishes."""
    os.environ[RUNTIME_DIR_VARIABLE] = str(directory)


def publish_state(directory: Path, state: dict[str, Any]) -> None:
    _write_atomically(directory / STATE_FILE, json.dumps(state))


def publish_config_state(directory: Path, state: dict[str, Any]) -> None:
    """The configuration in force: {"version", "api", "contents", "settings", "app_values", "rejected",
    "pending", "updated_at"}. `settings` and `app_values` are the layer the watcher validated, which
    every app applies as it is (the endpoint shows names only)."""
    _write_atomically(directory / CONFIG_STATE_FILE, json.dumps(state))


def read_desired(directory: Path) -> Wish | None:
    """The workers' last wish, or None when there is none on file."""
    path = directory / DESIRED_FILE
    try:
        written_ns = path.stat().st_mtime_ns
        return Wish(registered=path.read_text().strip() == "registered", written_ns=written_ns)
    except FileNotFoundError:
        return None


# -- the workers' side ---------------------------------------------------------------------------


def runtime_dir() -> Path | None:
    value = os.environ.get(RUNTIME_DIR_VARIABLE)
    return Path(value) if value else None


def read_state() -> dict[str, Any] | None:
    """The registrar's last published state, or None when no registrar runs for this service."""
    directory = runtime_dir()
    if directory is None:
        return None
    try:
        return json.loads((directory / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def read_config_state(directory: Path | None = None) -> dict[str, Any] | None:
    """The configuration watcher's last published state, or None when none runs (configuration off)."""
    directory = directory or runtime_dir()
    if directory is None:
        return None
    try:
        return json.loads((directory / CONFIG_STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def registration_state() -> RegistrationState:
    """What the rest of the app needs of the registrar's state (all of it: read_state())."""
    state = read_state()
    if state is None:
        return RegistrationState(registrar_running=False, registered=False, draining=False, consecutive_failures=0)
    return RegistrationState(
        registrar_running=True,
        registered=bool(state.get("registered")),
        draining=bool(state.get("draining")),
        consecutive_failures=state.get("consecutive_failures", 0),
    )


def write_desired(directory: Path, *, registered: bool) -> None:
    _write_atomically(directory / DESIRED_FILE, "registered" if registered else "deregistered")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# -- what a scrape of /monitoring/metrics shows of it (app/core/metrics.py) ----------------------


def scraped_figures() -> dict[str, Any]:
    state = registration_state()
    return {
        "registrar_running": state.registrar_running,
        "registered": state.registered,
        "consecutive_failures": state.consecutive_failures,
    }


def scraped_metrics(figures: dict[str, Any]) -> Iterator[Metric]:
    registered = int(figures["registered"])
    yield GaugeMetricFamily("nacos_registered", "1 while this instance is registered in Nacos", value=registered)
    failures = figures["consecutive_failures"]
    yield GaugeMetricFamily("nacos_heartbeat_failures", "Failed Nacos calls in a row (0 when healthy)", value=failures)
