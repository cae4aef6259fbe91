"""The load driver: clients that record every request, the summary table, and pass/fail checks."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

REQUEST_TIMEOUT_SECONDS = 30
# What a request without an answer ran into. Only "refused" means the server never had the request.
REFUSED = "refused"  # no connection: nothing listens (or the connection attempt timed out)
DROPPED = "dropped"  # connected, then closed or reset without an answer
TIMEOUT = "timeout"  # connected, no answer within REQUEST_TIMEOUT_SECONDS


@dataclass(frozen=True)
class OutageNumbers:
    """The sizes of an outage scenario: its clients, and the seconds before, during and after."""

    clients: int
    before_seconds: float
    down_seconds: float
    after_seconds: float


@dataclass(frozen=True)
class Outcome:
    """One request: what it was, when it ran, and its status or why it had none."""

    label: str
    started: float  # monotonic clock
    finished: float
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None

    @property
    def milliseconds(self) -> float:
        return (self.finished - self.started) * 1000

    def within(self, start: float, end: float) -> bool:
        """Sent and answered entirely between the two instants."""
        return start <= self.started and self.finished <= end


class Recorder:
    """Sends requests to one service and keeps an Outcome for each; one requests.Session per thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def request(self, label: str, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        """The response, or None when there was none (the Outcome says why)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        started = time.monotonic()
        try:
            response = session.request(method, self.base_url + path, timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException as exc:
            self._keep(Outcome(label, started, time.monotonic(), error=failure_kind(exc)))
            return None
        self._keep(
            Outcome(
                label, started, time.monotonic(), response.status_code, retry_after=response.headers.get("Retry-After")
            )
        )
        return response

    def labelled(self, *labels: str) -> list[Outcome]:
        with self._lock:
            return [outcome for outcome in self.outcomes if outcome.label in labels]

    def _keep(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)


def register_and_log_in(base_url: str, *, username: str, password: str) -> str:
    """An access token of a new account, made before the load starts."""
    account = {"username": username, "email": f"{username}@example.com", "password": password}
    requests.post(f"{base_url}/auth/register", json=account, timeout=30).raise_for_status()
    login = requests.post(f"{base_url}/auth/login", json={"username": username, "password": password}, timeout=30)
    login.raise_for_status()
    return login.json()["access_token"]


def failure_kind(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return REFUSED
    if isinstance(exc, requests.Timeout):
        return TIMEOUT
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError | ConnectTimeoutError):
        return REFUSED
    return DROPPED


def run_each(items: Iterable[Any], task: Callable[[Any], object], *, clients: int) -> None:
    """task(item) for every item, `clients` at a time."""
    with ThreadPoolExecutor(clients, thread_name_prefix="load-client") as pool:
        for _ in pool.map(task, items):
            pass  # pool.map raises a task's exception here


@contextmanager
def load_in_background(task: Callable[[int], object], *, clients: int, limit_seconds: float) -> Iterator[None]:
    """`clients` threads call task(client_number) over and over while the block runs (at most
    limit_seconds); leaving the block stops them and waits for their last requests."""
    stop = threading.Event()
    deadline = time.monotonic() + limit_seconds
    failures: list[BaseException] = []

    def client(number: int) -> None:
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                task(number)
        except BaseException as exc:  # a bug in the scenario: re-raised when the block ends
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(n,), name=f"load-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


# -- the report -----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of them at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(len(ordered) * fraction, 9)))  # round: 0.29 * 100 is 28.999999999999996
    return ordered[rank - 1]


def summary_table(outcomes: list[Outcome]) -> str:
    """Per label, then for all: requests, statuses, requests without an answer, p50/p99 latency of the answers."""
    labels = list(dict.fromkeys(outcome.label for outcome in outcomes))
    groups = [(label, [o for o in outcomes if o.label == label]) for label in labels]
    if len(groups) > 1:
        groups.append(("all", outcomes))
    rows = [("request", "count", "statuses", "no answer", "p50 ms", "p99 ms")]
    for label, group in groups:
        statuses = Counter(o.status for o in group if o.status is not None)
        errors = Counter(o.error for o in group if o.error is not None)
        latencies = [o.milliseconds for o in group if o.status is not None]  # of answers: a refusal takes no time
        rows.append(
            (
                label,
                str(len(group)),
                " ".join(f"{status}x{count}" for status, count in sorted(statuses.items())) or "-",
                " ".join(f"{error}x{count}" for error, count in sorted(errors.items())) or "0",
                f"{percentile(latencies, 0.50):.0f}" if latencies else "-",
                f"{percentile(latencies, 0.99):.0f}" if latencies else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {1, 4, 5}
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    )


@dataclass(frozen=True)
class Check:
    criterion: str
    passed: bool
    detail: str = ""


@dataclass
class Report:
    scenario: str
    setup: str  # the numbers this run used, one line
    outcomes: list[Outcome] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # measurements worth printing beside the table

    def check(self, criterion: str, passed: object, detail: str = "") -> None:
        self.checks.append(Check(criterion, bool(passed), detail))

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def render(self) -> str:
        lines = [f"== {self.scenario}: {self.setup}"]
        if self.outcomes:
            lines.append(summary_table(self.outcomes))
        lines += [f"   {note}" for note in self.notes]
        for check in self.checks:
            detail = f" ({check.detail})" if check.detail else ""
            lines.append(f"  {'ok  ' if check.passed else 'FAIL'} {check.criterion}{detail}")
        return "\n".join(lines)
