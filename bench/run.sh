#!/usr/bin/env bash
# The benchmark: the service against a bare Flask app and a same-work reference, all under the
# service's gunicorn settings; server CPU per request from /proc.
#   ./bench/run.sh                    # full run (100,000 users, 5 rounds, about 25 min); prints the tables
#   ./bench/run.sh --write-results    # the same, and writes bench/RESULTS.md
#   ./bench/run.sh --smoke            # every scenario once, tiny (1-2 min); fails on any error (CI)
# Other options: ./bench/run.sh --help. It needs PostgreSQL (BENCH_DATABASE_URL, default
# postgresql://postgres@127.0.0.1:5432/flask_api_bench: that database is dropped and re-created)
# and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

ensure_venv requirements.txt
ensure_debian_packages wrk  # sends the load
exec .venv/bin/python -m bench "$@"
