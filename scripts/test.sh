#!/usr/bin/env bash
# The test command: lint, then the whole suite on SQLite, PostgreSQL and MySQL/MariaDB, coverage,
# fuzzing from the OpenAPI document, the reliability scenarios (short form), the benchmark's smoke form,
# and the container check (scripts/container-check.sh).
#   ./scripts/test.sh [pytest arguments]
# TEST_POSTGRES_URL and TEST_MYSQL_URL name the servers (defaults: the local ones below); the test
# database in each is dropped and re-created. A server that cannot be reached is skipped with a
# warning, except with CI=true, where it fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_venv requirements-dev.txt
ensure_promtool
ensure_debian_packages postgresql redis-server  # the reliability scenarios run their own servers

POSTGRES_URL=${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/flask_api_test}
MYSQL_URL=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/flask_api_test}

echo "=== lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet app tests scripts bench manage.py run.py gunicorn.conf.py

rm -f .coverage .coverage.*
run_suite() {  # run_suite NAME DATABASE_URL [pytest arguments]
    local name=$1 url=$2
    shift 2
    echo "=== tests on $name"
    TEST_DATABASE_URL=$url .venv/bin/python -m pytest --cov --cov-append --cov-report= "$@"
}

run_suite sqlite "" "$@"
for backend in "postgresql $POSTGRES_URL" "mysql $MYSQL_URL"; do
    read -r name url <<< "$backend"
    status=0
    .venv/bin/python scripts/create_test_database.py "$url" || status=$?
    if [ "$status" -eq 0 ]; then
        run_suite "$name" "$url" "$@"
    elif [ "$status" -eq 3 ] && [ "${CI:-}" != "true" ]; then
        echo "WARNING: $name is unreachable; its run is skipped (with CI=true this fails)." >&2
    else
        echo "FAILED: could not prepare the $name test database." >&2
        exit 1
    fi
done

echo "=== coverage of app/"
.venv/bin/python -m coverage report --fail-under=90

# Fuzzing from the OpenAPI document (tests/fuzz/run.py), on PostgreSQL like production.
echo "=== fuzzing (schemathesis)"
fuzz_status=0
.venv/bin/python -m tests.fuzz.run --max-examples 25 --database-url "${POSTGRES_URL%/*}/flask_api_fuzz" \
    || fuzz_status=$?
if [ "$fuzz_status" -eq 3 ] && [ "${CI:-}" != "true" ]; then
    echo "WARNING: PostgreSQL is unreachable; fuzzing is skipped (with CI=true this fails)." >&2
elif [ "$fuzz_status" -ne 0 ]; then
    echo "FAILED: fuzzing." >&2
    exit 1
fi

# The reliability scenarios (tests/load/) in their short form; `python -m tests.load` is the long one.
echo "=== reliability scenarios"
.venv/bin/python -m tests.load --short

# The benchmark's smoke form: every scenario runs and answers without errors (no targets: see bench/).
echo "=== benchmark (smoke)"
./bench/run.sh --smoke --database-url "${POSTGRES_URL%/*}/flask_api_bench"

# The image: podman, debootstrap and friends come from Debian's packages, which needs root.
if [ "${CI:-}" = "true" ] || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }; then
    ./scripts/container-check.sh
else
    echo "WARNING: the container check needs root and apt-get; run ./scripts/container-check.sh where it can." >&2
fi
