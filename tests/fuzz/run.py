"""Fuzz the running service from its own OpenAPI document with schemathesis; exit non-zero on any failure.

    python -m tests.fuzz.run [--max-examples N] [--database-url URL]

It serves the production configuration under gunicorn on loopback (PostgreSQL by default, with a
fake Nacos so that the registry endpoints answer as in production), creates an administrator for
the fuzzer, and runs every phase (examples, coverage, fuzzing, stateful) with every check; the
per-operation expectations are in tests/fuzz/schemathesis.toml.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from scripts.create_test_database import recreate
from tests.nacos.fake_nacos import FakeNacos
from tests.processes import BIN, ROOT, free_port, gunicorn, hermetic_environment, service_environment, serving

HERE = Path(__file__).resolve().parent
ADMIN_PASSWORD = "Qv7#pLm2-throwaway-Kz9!"  # a throwaway account on a throwaway database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100, help="examples per operation and phase")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/flask_api_fuzz")
    parser.add_argument("--seed", type=int, help="hypothesis seed, to replay a run")
    parser.add_argument("--junit", type=Path, help="write the results there as JUnit XML (one case per operation)")
    arguments = parser.parse_args()
    if not arguments.database_url.startswith("sqlite"):
        recreate(arguments.database_url)

    nacos = FakeNacos().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            env = service_environment(
                Path(tmp),
                DATABASE_URL=arguments.database_url,
                FLASK_ENV="production",
                HOST="127.0.0.1",
                PORT=str(port),
                NACOS_SERVER_ADDR=nacos.address,
                NACOS_SERVICE_PORT=str(port),
                NACOS_DRAIN_SECONDS="0",
                # The fuzzer logs in again after every fuzzed logout; the limits are tested elsewhere.
                RATE_LIMIT_LOGIN="100000 per minute",
                RATE_LIMIT_LOGIN_ACCOUNT="100000 per minute",
                RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS="100000 per minute",
                RATE_LIMIT_CURRENT_PASSWORD="100000 per minute",
                RATE_LIMIT_REGISTER="100000 per minute",
                RATE_LIMIT_REFRESH="100000 per minute",
                RATE_LIMIT_NACOS_LOOKUP="100000 per minute",
                RATE_LIMIT_ALLOW_MEMORY="true",  # two workers, no Redis
            )
            create_admin(env, username="fuzz-admin")
            log_path = Path(tmp) / "service.log"
            with log_path.open("w") as log, serving(gunicorn(port, workers=2), env, port, log=log) as (base, _):
                status = run_schemathesis(base, service_env=env, arguments=arguments)
            if status != 0:
                print("--- the service's log, last 40 lines", *log_path.read_text().splitlines()[-40:], sep="\n")
            return status
    finally:
        nacos.stop()


def create_admin(env: dict[str, str], *, username: str) -> None:
    account = ["--username", username, "--email", f"{username}@example.com", "--password", ADMIN_PASSWORD]
    subprocess.run(
        [sys.executable, "manage.py", "create-admin", *account],
        cwd=ROOT,
        env={**env, "NACOS_ENABLED": "false"},
        check=True,
        capture_output=True,
        timeout=60,
    )


def run_schemathesis(base: str, *, service_env: dict[str, str], arguments: argparse.Namespace) -> int:
    requests.get(f"{base}/openapi.json", timeout=10).raise_for_status()
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{base}/openapi.json",
        "--url",
        base,
        "--max-examples",
        str(arguments.max_examples),
    ]
    if arguments.seed is not None:
        command += ["--seed", str(arguments.seed)]
    if arguments.junit is not None:
        command += ["--report", "junit", "--report-junit-path", str(arguments.junit.resolve())]
    env = {
        **hermetic_environment(os.environ),
        **service_env,  # the hooks make administrators with manage.py, on the service's database
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "FUZZ_BASE_URL": base,
    }
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
