"""`init-db` and `create-admin`, through Flask's CLI runner and `python manage.py`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.cli import create_admin, init_db
from tests.helpers import login, settings_for_tests
from tests.processes import SECRETS, coverage_variables, free_port, service_environment, serving

ROOT = Path(__file__).resolve().parents[1]
STRONG = "a strong admin passphrase"


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_init_db_is_idempotent(runner):
    for _ in range(2):
        result = runner.invoke(init_db)
        assert result.exit_code == 0 and "up to date" in result.output


def test_create_admin_from_flags(runner, client):
    result = runner.invoke(create_admin, ["--username", "Boss", "--email", "boss@example.com", "--password", STRONG])

    assert result.exit_code == 0, result.output
    assert "boss" in result.output and STRONG not in result.output
    token = login(client, "boss", STRONG)["access_token"]
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["role"] == "admin"


def test_create_admin_from_environment(runner, monkeypatch):
    monkeypatch.setenv("ADMIN_USERNAME", "envboss")
    monkeypatch.setenv("ADMIN_EMAIL", "envboss@example.com")
    monkeypatch.setenv("ADMIN_PASSWORD", STRONG)
    assert runner.invoke(create_admin, []).exit_code == 0


def test_create_admin_interactively(runner, client):
    result = runner.invoke(create_admin, input=f"asker\nasker@example.com\n{STRONG}\n{STRONG}\n")
    assert result.exit_code == 0, result.output
    assert STRONG not in result.output  # the prompt hides it
    assert login(client, "asker", STRONG)


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short-1", "at least 12"), ("aaaaaaaaaaaaaaaa", "different characters"), ("bossy-boss-123!", "username")],
)
def test_create_admin_refuses_weak_passwords(runner, password, reason):
    result = runner.invoke(create_admin, ["--username", "boss", "--email", "b@example.com", "--password", password])
    assert result.exit_code == 2 and reason in result.output


def test_create_admin_refuses_a_taken_name(runner):
    args = ["--username", "boss", "--email", "boss@example.com", "--password", STRONG]
    assert runner.invoke(create_admin, args).exit_code == 0
    result = runner.invoke(create_admin, args)
    assert result.exit_code == 1 and "already taken" in result.output


def test_create_admin_validates_name_and_email(runner):
    result = runner.invoke(create_admin, ["--username", "no spaces", "--email", "x@example.com", "--password", STRONG])
    assert result.exit_code == 2 and "username" in result.output
    result = runner.invoke(create_admin, ["--username", "boss", "--email", "nope", "--password", STRONG])
    assert result.exit_code == 2 and "email" in result.output


def test_manage_py_offers_the_seed_commands(tmp_path):
    database = f"sqlite:///{tmp_path / 'manage.db'}"
    env = {
        **coverage_variables(os.environ),
        "PATH": "/usr/bin:/bin",
        "FLASK_ENV": "testing",
        "DATABASE_URL": database,
        "LOG_LEVEL": "WARNING",
    }
    run = [sys.executable, str(ROOT / "manage.py")]
    help_text = subprocess.run([*run, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert "init-db" in help_text and "create-admin" in help_text
    done = subprocess.run([*run, "init-db"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "manage.db").exists()


@pytest.fixture
def unreachable_database_runner(database_url):
    """A CLI runner whose app's database refuses connections (nothing listens on the port)."""
    app = create_app(settings_for_tests(f"postgresql://app:hunter2@127.0.0.1:{free_port()}/app"))
    return app.test_cli_runner()


@pytest.mark.parametrize(
    "arguments",
    [[init_db], [create_admin, ["--username", "boss", "--email", "boss@example.com", "--password", STRONG]]],
    ids=["init-db", "create-admin"],
)
def test_an_unreachable_database_is_one_line_and_exit_1(unreachable_database_runner, arguments):
    result = unreachable_database_runner.invoke(*arguments)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot use the database at DATABASE_URL=postgresql")
    assert "Connection refused" in lines[0] and "hunter2" not in lines[0]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (None, "cannot use the database at DATABASE_URL="),  # a database that does not exist
        ("sqlite://app.db", "Configuration error: DATABASE_URL: is not a SQLite URL"),
    ],
)
def test_manage_py_init_db_failures_are_one_line(tmp_path, url, words):
    missing = f"sqlite:///{tmp_path / 'no-such-folder' / 'app.db'}"
    env = {
        **coverage_variables(os.environ),
        "PATH": "/usr/bin:/bin",
        "FLASK_ENV": "testing",
        "DATABASE_URL": url or missing,
        **SECRETS,
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "init-db"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert len((done.stdout + done.stderr).strip().splitlines()) == 1, done.stderr
    assert words in done.stderr


def test_development_server_says_where_the_docs_are_without_colour_codes(tmp_path):
    port = free_port()
    env = service_environment(tmp_path, FLASK_ENV="development", DEBUG="false", NACOS_ENABLED="false", PORT=str(port))
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log, serving([sys.executable, "run.py"], env, port, log=log):
        pass
    output = log_path.read_text()
    assert f"http://127.0.0.1:{port}/docs" in output and f"http://127.0.0.1:{port}/redoc" in output
    assert "python manage.py create-admin" in output
    assert "Press CTRL+C to quit" in output and "\x1b[" not in output  # a file is no terminal


@pytest.mark.parametrize("flag", ["--debug", "--debugger"])
def test_flask_run_refuses_the_debugger_in_production(tmp_path, flag):
    env = {
        **coverage_variables(os.environ),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "FLASK_ENV": "production",
        **SECRETS,
    }
    command = [str(Path(sys.executable).parent / "flask"), "--app", "app:create_app", "run", flag]
    refused = subprocess.run(
        [*command, "--port", str(free_port())], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Python console" in lines[0] and lines[0].startswith("Configuration error: ")
