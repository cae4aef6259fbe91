"""Run the reliability scenarios against the service; exit 1 when any criterion fails.

    python -m tests.load [--short] [scenario ...]

Prints each scenario's summary table and criteria as it ends, then one PASS/FAIL line per scenario.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.load import concurrency, database_outage, graceful_restart, redis_outage, registry_outage
from tests.load.driver import Report

SCENARIOS = {
    module.NAME: module for module in (concurrency, database_outage, registry_outage, graceful_restart, redis_outage)
}
# A scenario that is still running after this long is stopped and fails (its servers are stopped too).
TIME_LIMIT_SECONDS = {"long": 600, "short": 180}


class ScenarioTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(_signum, _frame):
        raise ScenarioTimeout(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.load", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI form: the same criteria with smaller numbers")
    parser.add_argument(
        "scenarios", nargs="*", metavar="scenario", help=f"any of {', '.join(SCENARIOS)}; all by default"
    )
    arguments = parser.parse_args(argv)
    if unknown := [name for name in arguments.scenarios if name not in SCENARIOS]:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so that every server a scenario started is stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    form = "short" if arguments.short else "long"
    results = []
    for name in arguments.scenarios or SCENARIOS:
        module = SCENARIOS[name]
        started = time.monotonic()
        try:
            with time_limit(TIME_LIMIT_SECONDS[form]):
                report = module.run(module.SHORT if arguments.short else module.LONG)
        except Exception as exc:  # the scenario could not run to its end: that is a failure, said in one line
            report = Report(name, "did not finish")
            report.check("the scenario ran to its end", False, f"{type(exc).__name__}: {exc}")
        print(report.render())
        print(f"   ({time.monotonic() - started:.0f} s)\n", flush=True)
        results.append(report)
    for report in results:
        print(f"{'PASS' if report.passed else 'FAIL'} {report.scenario}")
    return 0 if all(report.passed for report in results) else 1


if __name__ == "__main__":
    sys.exit(main())
