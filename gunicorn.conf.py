"""Gunicorn settings. Gunicorn reads ./gunicorn.conf.py by itself, so the README's production
command (`gunicorn --bind 0.0.0.0:5000 --workers 4 "app:create_app()"`) uses this file unnamed."""

from gunicorn import glogging

from app.config import load_settings, refuse_unsafe
from app.logging import configure_logging


class GunicornLogger(glogging.Logger):
    """Gunicorn's own records (master and workers) go through the app's handler, as JSON."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True


# Checked once here, in the master, before any worker forks: a refused setting stops gunicorn
# with its one line, instead of every worker dying and being restarted in a loop.
_settings = load_settings()
refuse_unsafe(_settings)
configure_logging(_settings)

logger_class = GunicornLogger
