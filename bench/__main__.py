"""The benchmark's command line: bench/run.sh runs `python -m bench` (see bench/__init__.py)."""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import bench
from bench.plan import FULL, LOGIN_CONNECTIONS, PER_PAGE, SMOKE, VARIANTS
from bench.report import RESULTS, machine_description, report, write_results
from bench.scenarios import measure
from bench.seed import DEFAULT_DATABASE_URL, refuse_foreign_database
from tests.processes import ROOT

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"  # not the tests' database 0
LOGIN_LIMITS = ("RATE_LIMIT_LOGIN", "RATE_LIMIT_LOGIN_ACCOUNT", "RATE_LIMIT_LOGIN_ACCOUNT_ADDRESS")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.sh", description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny sizes, one round, fail on any error")
    parser.add_argument("--users", type=int, help=f"users seeded (default {FULL.users:,}; smoke {SMOKE.users})")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {FULL.rounds})")
    parser.add_argument("--seconds", type=int, help=f"seconds per measurement (default {FULL.seconds})")
    parser.add_argument("--connections", type=int, help=f"wrk connections (default {FULL.connections})")
    parser.add_argument(
        "--memory-requests",
        type=int,
        help=f"requests between the two memory readings (default {FULL.memory_requests:,})",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to DROP and re-create; its name must contain 'bench' (BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis for the service's rate-limit counts (BENCH_REDIS_URL)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        help="gunicorn's max_requests for both apps instead of the service's setting (0: workers are never "
        "replaced; each replacement starts the app again)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the service (e.g. `git worktree add /tmp/base HEAD~1`) measured in the same "
        f"rounds: {', '.join(VARIANTS['baseline'])}, to see what a change bought",
    )
    parser.add_argument("--write-results", action="store_true", help=f"write the results into {RESULTS.name}")
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    sizes = ("users", "rounds", "seconds", "connections", "memory_requests")
    chosen = {name: getattr(arguments, name) for name in sizes}
    plan = replace(SMOKE if arguments.smoke else FULL, **{k: v for k, v in chosen.items() if v is not None})
    if plan.users < PER_PAGE * 2:
        raise SystemExit(f"--users must be at least {PER_PAGE * 2}, so that the last page is not page 1")
    refuse_foreign_database(arguments.database_url)
    command = shlex.join(["bench/run.sh", *sys.argv[1:]])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, so that the servers are stopped

    settings_env = {
        "FLASK_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(30),  # real-looking: 40 characters, new for each run
        "JWT_SECRET_KEY": secrets.token_urlsafe(30),
        "DATABASE_URL": arguments.database_url,
        "NACOS_ENABLED": "false",
        # Every feature on, as a user gets them: the JSON access line and metrics are on by default;
        # CORS for one origin; rate limits counted in Redis, set high enough that the login
        # scenario, all from one address and one account, measures logins rather than 429s.
        "CORS_ORIGINS": "https://app.example.com",
        "REDIS_URL": arguments.redis_url,
        **dict.fromkeys(LOGIN_LIMITS, "1000000 per minute"),
    }
    started = time.monotonic()
    # The servers' working directory and logs: a scratch folder, so that a developer's .env changes
    # nothing. Kept when something failed.
    workdir = Path(tempfile.mkdtemp(prefix="flask-api-bench-"))
    try:
        measured = measure(arguments, plan, settings_env, workdir)
    except BaseException:
        print(f"\nThe servers' logs are in {workdir}", file=sys.stderr)
        raise

    table, targets, problems = report(plan, measured)
    section = "\n".join(
        [
            f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `{command}` ({(time.monotonic() - started) / 60:.0f} min)",
            "",
            machine_description(settings=measured.settings, gunicorn=measured.gunicorn, postgres=measured.postgres),
            f"- {plan.users:,} users; {plan.rounds} round(s) x {plan.seconds} s per scenario, alternating; "
            f"wrk with 1 thread and {plan.connections} connections (login: 1 and {LOGIN_CONNECTIONS})",
            *([f"- baseline: the service as in `{arguments.baseline}`"] if arguments.baseline else []),
            "",
            table,
        ]
    )
    print(f"\n{section}")
    if arguments.write_results:
        write_results(section)
        print(f"\nWritten to {RESULTS.relative_to(ROOT)}")
    if problems:
        print(f"\nFAILED: {'; '.join(problems)}. The servers' logs are in {workdir}.", file=sys.stderr)
        return 1
    shutil.rmtree(workdir)
    if not arguments.smoke and not all(target.met for target in targets):
        print("\nSome targets are not met: see the table.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
