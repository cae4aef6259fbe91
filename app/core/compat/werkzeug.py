"""Werkzeug (pinned 3.1.9): colour in its start lines, and its reloader starting the child that serves.

- `werkzeug.serving._log_add_style`: Werkzeug colours its start lines ("Press CTRL+C to quit")
  whatever the output; this module-level switch is the only way to turn that off.
- The reloader's watcher starts the serving child with `subprocess.call(..., env=...)`, where the
  environment has WERKZEUG_RUN_MAIN=true, and installs its own SIGTERM handler just before, after
  any code of ours has run. Python's audit event for a new subprocess is the one moment to act.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from werkzeug import serving


def plain_start_lines() -> None:
    serving._log_add_style = False


def when_the_reloader_starts_its_child(callback: Callable[[], None]) -> None:
    """Call `callback` in the main thread each time the reloader starts its serving child.

    Audit hooks cannot be removed: call this once per process.
    """

    def on_audit_event(event: str, args: tuple) -> None:
        starts_the_child = event == "subprocess.Popen" and (args[3] or {}).get("WERKZEUG_RUN_MAIN") == "true"
        if starts_the_child and threading.current_thread() is threading.main_thread():
            callback()

    sys.addaudithook(on_audit_event)
