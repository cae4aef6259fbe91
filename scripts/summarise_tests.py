"""The test command's last word: `N passed, N failed`, over JUnit XML reports and the stages that failed.

    python scripts/summarise_tests.py [--failed STAGE[=REPORT]]... REPORT.xml...

Every test case of the reports (pytest's --junitxml, schemathesis' JUnit report) counts: with a failure
or an error it failed, skipped it is neither, else it passed. A report that is missing is left out (its
stage was skipped, or failed and is named with --failed). A stage that failed counts as one failure,
unless its report already counts one (a suite whose tests failed): a crash, a coverage below the
threshold or a scenario that failed is never a silent success.

Prints one line per report and per failed stage, then the totals alone on the last line; exits 1 when
anything failed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree


@dataclass(frozen=True)
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.passed + other.passed, self.failed + other.failed, self.skipped + other.skipped)

    def __str__(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def read_report(path: Path) -> Counts:
    """The test cases of one JUnit XML file."""
    counts = Counts()
    # Our own reports, written by this run: not untrusted input.
    for case in ElementTree.parse(path).iter("testcase"):  # noqa: S314
        outcomes = {child.tag for child in case}
        if outcomes & {"failure", "error"}:
            counts += Counts(failed=1)
        elif "skipped" in outcomes:
            counts += Counts(skipped=1)
        else:
            counts += Counts(passed=1)
    return counts


def summarise(reports: list[Path], failed_stages: list[str]) -> tuple[list[str], Counts]:
    """The lines to print before the totals, and the totals."""
    lines, total, counted = [], Counts(), {}
    for path in reports:
        if path.exists():
            counted[path] = read_report(path)
            total += counted[path]
            lines.append(f"{path.stem}: {counted[path]}, {counted[path].skipped} skipped")
    for stage in failed_stages:
        name, _, report = stage.partition("=")
        if report and (found := counted.get(Path(report))) and found.failed:
            continue  # its failed tests are counted already
        total += Counts(failed=1)
        lines.append(f"FAILED: {name}")
    return lines, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", type=Path, help="JUnit XML files")
    parser.add_argument(
        "--failed",
        action="append",
        default=[],
        metavar="STAGE[=REPORT]",
        help="a stage that failed, and the report it wrote if any",
    )
    arguments = parser.parse_args(argv)
    lines, total = summarise(arguments.reports, arguments.failed)
    print(*lines, total, sep="\n")
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
