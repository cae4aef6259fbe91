"""The suite and the machine: no test reads the developer's `.env` or the caller's settings, and a test
that needs a program from outside Python says so when it is missing (and fails under CI)."""

import os
import subprocess
import sys

import pytest

from app.config import ENV_FILE_VARIABLE, SETTING_NAMES
from tests.helpers import outside_tool
from tests.processes import (
    ROOT,
    configures_the_service,
    coverage_variables,
    hermetic_environment,
    service_environment,
    unmeasured,
)

# What a developer's shell and `cp config.env .env` leave behind, and worse.
HOSTILE = {
    "FLASK_ENV": "production",
    "DEBUG": "True",
    "DATABASE_URL": "sqlite:///x.db",
    "NACOS_SERVICE_NAME": "hostile",
    "SECRET_KEY": "your-secret-key-here",
    "FLASK_APP": "nowhere:nothing",
    "GUNICORN_CMD_ARGS": "--workers 0",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318",  # tracing on, to a collector far away
    "OTEL_PROPAGATORS": "nonexistent",
}


def test_hermetic_environment_drops_every_setting_and_the_settings_file():
    caller = {
        **{name: "x" for name in SETTING_NAMES},
        **HOSTILE,
        "debug": "true",  # pydantic-settings reads names in any case
        ENV_FILE_VARIABLE: "/home/dev/project/.env",
        "PATH": "/usr/bin",
        "HOME": "/home/dev",
        "TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1/flask_api_test",
        "CI": "true",
        "COVERAGE_PROCESS_CONFIG": "(pytest --cov)",
    }
    assert hermetic_environment(caller) == {
        "PATH": "/usr/bin",
        "HOME": "/home/dev",
        "TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1/flask_api_test",
        "CI": "true",
        "COVERAGE_PROCESS_CONFIG": "(pytest --cov)",
        ENV_FILE_VARIABLE: "",
        "FLASK_SKIP_DOTENV": "1",
    }


def test_the_test_process_and_its_servers_have_no_settings_but_their_own(tmp_path):
    no_file = {ENV_FILE_VARIABLE: "", "FLASK_SKIP_DOTENV": "1"}
    assert {name: value for name, value in os.environ.items() if configures_the_service(name)} == no_file
    served = service_environment(tmp_path)
    assert no_file.items() <= served.items()
    # Under `pytest --cov`, coverage's variables reach the servers: they measure themselves.
    assert coverage_variables(os.environ).items() <= served.items()
    assert not coverage_variables(unmeasured(served))


def test_a_server_started_by_the_tests_reads_no_env_file(tmp_path):
    (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in HOSTILE.items()))
    shown = subprocess.run(
        [sys.executable, "-c", "from app.config import load_settings; print(load_settings().nacos.NACOS_SERVICE_NAME)"],
        cwd=tmp_path,
        env={**hermetic_environment(os.environ), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert shown.stdout.strip() == "flask-api"


def test_a_hostile_shell_changes_no_outcome(tmp_path):
    """The issue's reproduction: production servers and default settings, run from a developer's shell."""
    hostile_file = tmp_path / "hostile.env"
    hostile_file.write_text("".join(f"{name}={value}\n" for name, value in HOSTILE.items()))
    tests = [
        "tests/test_serving.py::test_gunicorn_production_line_with_four_workers",
        "tests/test_config.py::test_nacos_settings_have_the_seed_defaults",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env={**unmeasured(os.environ), **HOSTILE, ENV_FILE_VARIABLE: str(hostile_file)},  # measured in this run already
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]


def test_an_outside_tool_is_found_beside_python_or_on_the_path():
    assert outside_tool("sh").endswith("/sh")


def test_a_missing_outside_tool_skips_naming_it_but_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool is not installed"):
        outside_tool("no-such-tool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool is not installed"):
        outside_tool("no-such-tool")
