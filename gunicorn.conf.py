"""Gunicorn settings. Gunicorn reads ./gunicorn.conf.py by itself, so the README's production
command (`gunicorn --bind 0.0.0.0:5000 --workers 4 "app:create_app()"`) uses this file unnamed.

The master, not a worker, registers the instance in Nacos: one registration whatever the number
of workers, untouched when a worker dies or is recycled, and gone first when the server stops.
"""

import gc
import os
import tempfile
from pathlib import Path

# Before anything imports prometheus_client (app does): it picks its multiprocess mode at import.
# Every worker writes its metrics to files there; a scrape adds them up. Cleaned at each start so
# that a previous run's counts do not come back.
_metrics_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="flask-api-metrics-"))
_metrics_dir.mkdir(parents=True, exist_ok=True)
for _stale in [*_metrics_dir.glob("*.db"), *_metrics_dir.glob("exemplars_*.json")]:
    _stale.unlink()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
os.environ["APP_SERVER_PID"] = str(os.getpid())  # workers list their siblings from here

from gunicorn import glogging  # noqa: E402
from gunicorn.workers.gthread import ThreadWorker  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import __version__  # noqa: E402
from app.auth.passwords import Passwords  # noqa: E402
from app.config import load_settings, refuse_unsafe  # noqa: E402
from app.core.compat.gunicorn import accept_queued  # noqa: E402
from app.core.logging import configure_logging  # noqa: E402
from app.core.metrics import fold_dead_worker, save_exemplars  # noqa: E402
from app.nacos.config_watcher import start_configuration  # noqa: E402
from app.nacos.process import register_gunicorn_master  # noqa: E402
from app.tracing import stop_tracing  # noqa: E402


class GunicornLogger(glogging.Logger):
    """Gunicorn's own records (master and workers) go through the app's handler, as JSON."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True


class StopListeningThreadWorker(ThreadWorker):
    """Gunicorn's gthread worker, except that once it stops accepting it stops listening too.

    Gunicorn's own keeps its copy of the listening socket open until its last request is
    answered (up to GUNICORN_GRACEFUL_TIMEOUT): the kernel goes on accepting connections into the
    socket's queue meanwhile, and resets them all unanswered when the worker exits. A client then
    cannot tell whether its request was handled. Here the worker first takes in the connections
    already queued (they are answered with the rest), then closes its copy, so that once every
    process of the server has done so a new connection is refused at once: a client can safely
    send that request to another instance.
    """

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if enabled or self.alive:  # only busy for now (worker_connections), not stopping
            return
        for listener in self.sockets:
            accept_queued(self, listener)
            listener.close()


# Checked once here, in the master, before any worker forks: a refused setting stops gunicorn
# with its one line, instead of every worker dying and being restarted in a loop. With the
# configuration from Nacos (read here, watched from here: the workers follow what this publishes).
_settings = load_settings()
configure_logging(_settings)  # what the start says of Nacos goes where the service logs
_config = start_configuration(_settings)
if _config is not None:
    _settings = _config.settings
    configure_logging(_settings)  # LOG_LEVEL and LOG_FORMAT as Nacos says
refuse_unsafe(_settings)

# What every worker's start would otherwise repeat, done once here: workers inherit it through the
# fork. Importing the app (above) is most of it; then the database driver, which the app imports only
# when it makes its engine, and the dummy Argon2 hash (app/auth/passwords.py). A worker's start is
# then about the app's own construction, a few hundredths of a second.
make_url(_settings.database.DATABASE_URL).get_dialect().import_dbapi()
Passwords(_settings.auth)
# All of that lives as long as the server: out of the garbage collector's sight (the `gc.freeze()`
# the Python documentation gives for a fork without exec), so that a worker's collections never
# write into these objects' pages, which then stay shared with the master instead of being copied
# into every worker, and a worker's full collections skip them.
gc.collect()
gc.freeze()

logger_class = GunicornLogger
_registrar = None

# Each setting can be overridden on the command line (`--workers 4` in the README's command).
bind = [f"{_settings.server.HOST}:{_settings.server.PORT}"]
workers = _settings.server.WEB_CONCURRENCY or 2 * (os.cpu_count() or 1) + 1
# gthread: threads share a worker's memory, cheap concurrency for I/O-bound requests.
worker_class = StopListeningThreadWorker
threads = _settings.server.GUNICORN_THREADS
timeout = _settings.server.GUNICORN_TIMEOUT
graceful_timeout = _settings.server.GUNICORN_GRACEFUL_TIMEOUT
keepalive = _settings.server.GUNICORN_KEEPALIVE
# Recycling workers bounds what a slow leak can cost; the jitter keeps them from restarting at once.
max_requests = _settings.server.GUNICORN_MAX_REQUESTS
max_requests_jitter = _settings.server.GUNICORN_MAX_REQUESTS_JITTER
# Gunicorn's control socket (gunicornc) is off: the service does not use it, its default path in $HOME
# is shared by every gunicorn of the user, and its thread in the master could take the master's signals.
control_socket_disable = True
# No gunicorn access log: the app writes one JSON access line per request (app/core/logging.py).
accesslog = None


def on_starting(server) -> None:
    # The number of workers is known only now (--workers, WEB_CONCURRENCY, GUNICORN_CMD_ARGS):
    # several workers without Redis would each count the rate limits on their own.
    refuse_unsafe(_settings, workers=server.cfg.workers)


def when_ready(server) -> None:
    global _registrar
    _registrar = register_gunicorn_master(server, _settings.nacos, version=__version__, config=_config)


def worker_exit(server, worker) -> None:
    # In the worker, as it exits (stopped or recycled): its last exemplars go to its file, its last
    # spans to the collector, in bounded time. The SDK started in this worker with the app (the
    # master never builds the app, so it never traces).
    save_exemplars()
    stop_tracing()


def child_exit(server, worker) -> None:
    # Its counts go to the archive (totals never drop, files do not pile up); its live gauge goes.
    fold_dead_worker(worker.pid, directory=_metrics_dir)


def on_exit(server) -> None:
    if _registrar is not None:
        _registrar.close()  # deregistered already after SIGTERM; this covers SIGQUIT and errors
    if _config is not None:
        _config.close()
