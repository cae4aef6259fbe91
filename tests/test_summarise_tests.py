"""scripts/summarise_tests.py, and scripts/test.sh ending with its count whatever stops it."""

import os
import shutil
import subprocess
import sys

import pytest

from scripts.summarise_tests import Counts, main, read_report, summarise
from tests.processes import ROOT, hermetic_environment

# As pytest writes them (--junitxml): a failure, an error (in a fixture), a skip, two passes.
PYTEST_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="tests.test_a" name="test_passes" time="0.1" />
<testcase classname="tests.test_a" name="test_fails" time="0.1"><failure message="assert">...</failure></testcase>
<testcase classname="tests.test_a" name="test_errors" time="0.1"><error message="fixture">...</error></testcase>
<testcase classname="tests.test_a" name="test_skips" time="0.0"><skipped message="no promtool" /></testcase>
<testcase classname="tests.test_b" name="test_passes" time="0.1"><system-out>noise</system-out></testcase>
</testsuite></testsuites>
"""
# As schemathesis writes them (--report junit): one case per operation.
FUZZ_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites errors="0" failures="0" skipped="0" tests="2"><testsuite name="schemathesis" tests="2">
<testcase name="POST /auth/login" time="4.2" />
<testcase name="Stateful tests" time="0.1" />
</testsuite></testsuites>
"""
PASSING_REPORT = """<testsuites><testsuite name="pytest"><testcase name="test_ok" /></testsuite></testsuites>"""


@pytest.fixture
def reports(tmp_path):
    (tmp_path / "tests on sqlite.xml").write_text(PYTEST_REPORT)
    (tmp_path / "fuzzing.xml").write_text(FUZZ_REPORT)
    return tmp_path


def test_a_report_counts_failures_and_errors_as_failed_and_skips_as_neither(reports):
    assert read_report(reports / "tests on sqlite.xml") == Counts(passed=2, failed=2, skipped=1)
    assert read_report(reports / "fuzzing.xml") == Counts(passed=2)


def test_reports_add_up_and_a_missing_one_is_left_out(reports):
    lines, total = summarise([reports / "tests on sqlite.xml", reports / "fuzzing.xml", reports / "mysql.xml"], [])
    assert lines == ["tests on sqlite: 2 passed, 2 failed, 1 skipped", "fuzzing: 2 passed, 0 failed, 0 skipped"]
    assert str(total) == "4 passed, 2 failed"


def test_a_failed_stage_counts_once_unless_its_report_counts_it(reports):
    sqlite = reports / "tests on sqlite.xml"
    _, total = summarise([sqlite], [f"tests on sqlite={sqlite}"])
    assert total.failed == 2  # its two failed tests, not a third for the stage
    (reports / "empty.xml").write_text(PASSING_REPORT)
    lines, total = summarise(
        [sqlite, reports / "empty.xml"], [f"collecting={reports / 'empty.xml'}", "coverage of app/", "crash=nowhere"]
    )
    assert lines[-3:] == ["FAILED: collecting", "FAILED: coverage of app/", "FAILED: crash"]
    assert (total.passed, total.failed) == (3, 5)


def test_the_count_is_the_last_line_alone_and_the_exit_status_says_whether_anything_failed(reports, capsys):
    assert main([str(reports / "fuzzing.xml")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 passed, 0 failed"
    assert main([str(reports / "tests on sqlite.xml"), str(reports / "fuzzing.xml")]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "4 passed, 2 failed"
    assert main(["--failed", "lint"]) == 1
    assert capsys.readouterr().out.splitlines() == ["FAILED: lint", "0 passed, 1 failed"]


# scripts/test.sh itself, with every tool it runs replaced by a stub: what each stage answers is set
# by the test, and the last line and the exit status are checked.
STUB_PYTHON = """#!/usr/bin/env bash
case "$1" in
    scripts/summarise_tests.py) exec {python} "$@" ;;
    scripts/create_test_database.py) exit 3 ;;  # PostgreSQL and MySQL unreachable: their runs are skipped
esac
case "$2" in
    pytest) for argument; do [[ $argument == --junitxml=* ]] && cp "$STUBS/pytest.xml" "${{argument#--junitxml=}}"; done
        exit "${{PYTEST_STATUS:-0}}" ;;
    tests.fuzz.run) cp "$STUBS/fuzz.xml" "${{@: -1}}"; exit "${{FUZZ_STATUS:-0}}" ;;
    coverage) exit "${{COVERAGE_STATUS:-0}}" ;;
esac
"""


@pytest.fixture
def test_command(tmp_path):
    """A copy of scripts/test.sh whose tools are stubs; run(**statuses) -> (exit status, output lines)."""
    checkout = tmp_path / "checkout"
    for script in ("test.sh", "summarise_tests.py"):
        (checkout / "scripts").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "scripts" / script, checkout / "scripts" / script)
    (checkout / "scripts" / "bootstrap.sh").write_text(
        "ensure_venv() { :; }\nensure_promtool() { :; }\nensure_debian_packages() { :; }\n"
    )
    stubs = {
        ".venv/bin/python": STUB_PYTHON.format(python=sys.executable),
        ".venv/bin/ruff": "#!/bin/sh\n",
        ".venv/bin/lint-imports": "#!/bin/sh\n",
        "bench/run.sh": "#!/bin/sh\n",
        "scripts/container-check.sh": "#!/bin/sh\n",
    }
    for path, text in stubs.items():
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_text(text)
        (checkout / path).chmod(0o755)
    (tmp_path / "pytest.xml").write_text(PASSING_REPORT)
    (tmp_path / "fuzz.xml").write_text(FUZZ_REPORT)

    def run(**statuses: int) -> tuple[int, list[str]]:
        environment = {name: value for name, value in hermetic_environment(os.environ).items() if name != "CI"}
        finished = subprocess.run(
            ["bash", str(checkout / "scripts" / "test.sh")],
            env={**environment, "STUBS": str(tmp_path), **{name: str(value) for name, value in statuses.items()}},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return finished.returncode, finished.stdout.splitlines()

    return run


def test_the_test_command_ends_with_the_count(test_command):
    status, lines = test_command()
    assert (status, lines[-1]) == (0, "3 passed, 0 failed")  # one test on SQLite, two fuzzed operations


def test_failed_tests_end_the_test_command_with_their_count_and_a_failure(test_command, tmp_path):
    (tmp_path / "pytest.xml").write_text(PYTEST_REPORT)
    status, lines = test_command(PYTEST_STATUS=1)
    assert (status, lines[-1]) == (1, "2 passed, 2 failed")
    assert "=== fuzzing (schemathesis)" not in lines


@pytest.mark.parametrize(
    ("statuses", "stage"),
    [
        ({"COVERAGE_STATUS": 2}, "coverage of app/"),
        ({"FUZZ_STATUS": 1}, "fuzzing"),
        ({"PYTEST_STATUS": 4}, "tests on sqlite"),  # pytest stopped without a failed test (usage error)
    ],
)
def test_a_failed_stage_ends_the_test_command_with_a_failure_counted(test_command, statuses, stage):
    status, lines = test_command(**statuses)
    assert status != 0
    assert lines[-2:] == [f"FAILED: {stage}", lines[-1]] and lines[-1].endswith(" passed, 1 failed")
