"""The standard library's logging (Python 3.11): not looking up each record's caller.

Stdlib logging finds the caller's file, line and function for every record unless
`logging._srcfile` is None; the logging HOWTO ("Optimization") documents that switch, but it has no
public name. (Threads, processes and multiprocessing have public flags: `logging.logThreads` etc.)
"""

from __future__ import annotations

import logging


def skip_caller_lookup() -> None:
    logging._srcfile = None
