"""click (pinned 8.5.1) and Flask's `flask run` command (Flask 3.1.3): its options, read while the
app is being built.

`flask run` builds the app before it serves and tells the app neither its port nor whether the
reloader or the debugger is on. Click's current context has them: `click.get_current_context` and
a context's `command.name` and `params` are public, but the command's name (`run`) and its
parameters' names (`port`, `reload`, `debugger`) are Flask's own.
"""

from __future__ import annotations

import click


def flask_run_context() -> click.Context | None:
    """The context of `flask run` when it is building the app; None otherwise (gunicorn, tests,
    `python run.py`, other commands)."""
    context = click.get_current_context(silent=True)
    if context is None or context.command.name != "run" or "port" not in context.params:
        return None
    return context
