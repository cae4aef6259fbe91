"""gunicorn (pinned 27.0.1): a gthread worker taking in the connections already queued.

`ThreadWorker` has no public way to accept what waits in a listener's queue: this uses its
`accept(listener)` (non-blocking, hands the connection to the thread pool) and its `nr_conns`
count, which `accept` raises by one for each connection it takes in.
"""

from __future__ import annotations

import socket

from gunicorn.workers.gthread import ThreadWorker


def accept_queued(worker: ThreadWorker, listener: socket.socket) -> None:
    """Take in the connections waiting on `listener`, up to the worker's connection limit."""
    while worker.nr_conns < worker.worker_connections:
        taken = worker.nr_conns
        worker.accept(listener)
        if worker.nr_conns == taken:
            break  # the queue is empty
