"""Development server: `python run.py`. Production uses gunicorn (see README)."""

from app import create_app

app = create_app()

if __name__ == "__main__":
    settings = app.extensions["settings"]
    # The reloader, not the interactive debugger: errors stay JSON even in development.
    app.run(host=settings.HOST, port=settings.PORT, debug=settings.debug, use_debugger=False)
