#!/usr/bin/env bash
# The benchmark: the service against a bare Flask app, both under the production gunicorn settings.
#   ./bench/run.sh                    # full run (100,000 users, 5 rounds, about 20 min); prints the table
#   ./bench/run.sh --write-results    # the same, and writes bench/RESULTS.md
#   ./bench/run.sh --smoke            # every scenario once, tiny (1-2 min); fails on any error (CI)
# Other options: ./bench/run.sh --help. It needs PostgreSQL (BENCH_DATABASE_URL, default
# postgresql://postgres@127.0.0.1:5432/flask_api_bench: that database is dropped and re-created).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

ensure_venv requirements.txt
ensure_debian_packages wrk  # sends the load
exec .venv/bin/python -m bench "$@"
