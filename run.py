"""Development server: `python run.py`. Production uses gunicorn (see README)."""

from werkzeug.serving import is_running_from_reloader

from app import __version__, create_app
from app.cli import log_where_to_start
from app.config import load_settings
from app.core.logging import configure_logging
from app.extensions import SETTINGS
from app.nacos.config_watcher import start_development_configuration
from app.nacos.process import prepare_development_server


def main() -> None:
    local = load_settings()
    # DEBUG (the reloader) as the environment and .env say: it decides which process reads Nacos.
    reloader = local.app.debug
    configure_logging(local)  # what the start says of Nacos goes where the service logs
    config = start_development_configuration(local, reloader=reloader)
    app = create_app()  # with the configuration from Nacos, when it was read just now
    settings = app.extensions[SETTINGS]
    if not is_running_from_reloader():  # once, not again in the reloader's serving child
        log_where_to_start(settings)
    prepare_development_server(
        settings.nacos, port=settings.server.PORT, reloader=reloader, version=__version__, config=config
    )
    # The reloader, not the interactive debugger: errors stay JSON even in development.
    app.run(
        host=settings.server.HOST,
        port=settings.server.PORT,
        debug=settings.app.debug,
        use_reloader=reloader,
        use_debugger=False,
    )


if __name__ == "__main__":
    main()
