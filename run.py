"""Development server: `python run.py`. Production uses gunicorn (see README)."""

from werkzeug.serving import is_running_from_reloader

from app import __version__, create_app
from app.cli import log_where_to_start
from app.extensions import SETTINGS
from app.nacos.process import prepare_development_server

app = create_app()

if __name__ == "__main__":
    settings = app.extensions[SETTINGS]
    if not is_running_from_reloader():  # once, not again in the reloader's serving child
        log_where_to_start(settings)
    prepare_development_server(
        settings.nacos, port=settings.server.PORT, reloader=settings.app.debug, version=__version__
    )
    # The reloader, not the interactive debugger: errors stay JSON even in development.
    app.run(host=settings.server.HOST, port=settings.server.PORT, debug=settings.app.debug, use_debugger=False)
