"""Where the one Registrar of a service instance runs, and how it leaves when the process stops."""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import structlog
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader

from app.core.compat.click import flask_run_context
from app.core.compat.werkzeug import when_the_reloader_starts_its_child
from app.nacos.client import NacosError
from app.nacos.registrar import Registrar, client_from_settings, registration_from_settings
from app.nacos.settings import NacosSettings
from app.nacos.state import announce, new_runtime_dir
from app.settings_group import ConfigError

if TYPE_CHECKING:
    from app.nacos.config_watcher import ConfigStart

log = structlog.get_logger(__name__)


def start_registrar(
    settings: NacosSettings, *, serving_port: int, version: str, runtime_dir: Path | None = None
) -> Registrar | None:
    """Register this instance (the port it serves on, unless NACOS_SERVICE_PORT says otherwise).

    With NACOS_FAIL_FAST a failed first registration stops the process with one line.
    """
    if not settings.NACOS_ENABLED:
        return None
    port = settings.NACOS_SERVICE_PORT if "NACOS_SERVICE_PORT" in settings.model_fields_set else serving_port
    try:
        registration = registration_from_settings(settings, port=port, version=version)
    except NacosError as exc:  # an interface without an address
        raise ConfigError(f"NACOS_NETWORK_INTERFACE: {exc}") from None
    registrar = Registrar(
        client=client_from_settings(settings),
        registration=registration,
        interval=settings.NACOS_HEARTBEAT_INTERVAL,
        runtime_dir=runtime_dir or new_runtime_dir(),  # the configuration's, when it has one already
    )
    try:
        registrar.start(fail_fast=settings.NACOS_FAIL_FAST)
    except NacosError as exc:
        raise SystemExit(f"Nacos registration failed and NACOS_FAIL_FAST is set: {exc}") from None
    announce(registrar.runtime_dir)
    return registrar


def prepare_development_server(
    settings: NacosSettings, *, port: int, reloader: bool, version: str, config: ConfigStart | None = None
) -> None:
    """For `python run.py` and `flask run`, before they serve (`config`: read at start, watched from now).

    With the reloader this process only watches files: the child it starts serves and registers,
    and this one passes SIGTERM on to it.
    """
    if reloader and not is_running_from_reloader():
        pass_sigterm_to_the_serving_child()
    else:
        register_development_server(settings, port=port, version=version, config=config)


def register_development_server(
    settings: NacosSettings, *, port: int, version: str, config: ConfigStart | None = None
) -> None:
    """Register now and watch the configuration; deregister and stop watching when the process ends.

    SIGTERM normally kills Python without running atexit; turning it into SystemExit lets the
    server loop end and atexit deregister.
    """
    directory = config.directory if config is not None else None
    registrar = start_registrar(settings, serving_port=port, version=version, runtime_dir=directory)
    if config is not None:
        atexit.register(config.close)  # registered first, so it runs after the registrar's close
        config.watch(registrar)
    if registrar is not None:
        atexit.register(registrar.close)
    if registrar is not None or config is not None:
        signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))


_passing_sigterm_on = False  # audit hooks cannot be removed: one is enough


def pass_sigterm_to_the_serving_child() -> None:
    """In the reloader's watcher: SIGTERM stops the serving child (which deregisters), then the watcher.

    Werkzeug's watcher exits at SIGTERM at once and SIGKILLs its child on the way, so the child
    never deregisters. Werkzeug installs that handler itself just before it starts the child, after
    any code of ours has run; ours replaces it when the child starts, from Python's audit event for
    a new subprocess (raised in the thread starting it, here the main one, where handlers are set).
    The watcher then waits for the child as usual and exits with its status.
    """
    global _passing_sigterm_on
    if _passing_sigterm_on:
        return
    _passing_sigterm_on = True

    def stop_the_children(_signum: int, _frame) -> None:
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.NoSuchProcess):  # it may be exiting already
                child.terminate()

    when_the_reloader_starts_its_child(lambda: signal.signal(signal.SIGTERM, stop_the_children))


def flask_run_options() -> tuple[int, bool] | None:
    """The port, and whether the reloader is on, when `flask run` is building the app; else None.

    With the reloader, `flask run` builds the app both in the watcher process and in the child
    that serves.
    """
    context = flask_run_context()
    if context is None:
        return None
    reload = context.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return context.params["port"], reload


def register_gunicorn_master(
    server, settings: NacosSettings, *, version: str, config: ConfigStart | None = None
) -> Registrar | None:
    """Gunicorn's when_ready hook (the port is bound): register, and deregister first when asked to
    stop; then watch the configuration (read at start: `config`)."""
    address = server.LISTENERS[0].sock.getsockname()
    port = address[1] if isinstance(address, tuple) else settings.NACOS_SERVICE_PORT  # a unix socket has none
    directory = config.directory if config is not None else None
    with signals_left_to_the_main_thread(server):
        registrar = start_registrar(settings, serving_port=port, version=version, runtime_dir=directory)
        if config is not None:
            config.watch(registrar)
    if registrar is not None:
        leave_before_stopping(server, registrar, drain_seconds=settings.NACOS_DRAIN_SECONDS)
    return registrar


@contextlib.contextmanager
def signals_left_to_the_main_thread(server):
    """Threads started inside block the signals gunicorn's master handles (they inherit the mask).

    The kernel hands a signal sent to the process to any thread that does not block it, Python runs
    the handler in the main thread only, and gunicorn's main thread waits for signals in a queue for
    up to a second: a SIGTERM landing on the registrar's thread would be acted on that much later."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {*server.SIGNALS, signal.SIGCHLD})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def leave_before_stopping(server, registrar: Registrar, *, drain_seconds: float) -> None:
    """Gunicorn master: on SIGTERM or SIGINT, deregister first, keep serving for the drain delay
    while consumers drop this instance from their lists, then let gunicorn stop gracefully.
    A second signal skips what is left of the drain."""
    leaving = threading.Event()

    def leave_then_stop() -> None:
        registrar.stop()
        log.info("draining before shutdown", seconds=drain_seconds)
        time.sleep(drain_seconds)
        server.signal(signal.SIGTERM, None)

    def on_signal(signum: int, frame) -> None:
        if leaving.is_set():
            server.signal(signum, frame)  # asked twice: stop now, gunicorn's way
            return
        leaving.set()
        threading.Thread(target=leave_then_stop, name="nacos-leave", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
