#!/usr/bin/env bash
# The test command: lint, then the whole suite on SQLite, PostgreSQL and MySQL/MariaDB, coverage,
# fuzzing from the OpenAPI document, the reliability scenarios (short form), the benchmark's smoke form,
# and the container check (scripts/container-check.sh).
#   ./scripts/test.sh [pytest arguments]
# TEST_POSTGRES_URL and TEST_MYSQL_URL name the servers (defaults: the local ones below); the test
# database in each is dropped and re-created. A server that cannot be reached is skipped with a
# warning, except with CI=true, where it fails the run.
# The last line is the count, alone: `N passed, N failed`, over the suite's runs on the three
# databases and the fuzzed operations (scripts/summarise_tests.py; a stage that fails otherwise counts
# as one failure), and the exit status is non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

REPORTS=$(mktemp -d)  # the JUnit XML of each run, summed at the end
failed_stages=()      # STAGE or STAGE=REPORT, for scripts/summarise_tests.py
stage=""
begin() {  # begin STAGE: the stage named if the run stops in it
    stage=$1
    echo "=== $stage"
}
summarise() {  # on exit, whatever stopped the run: the count, last
    local status=$? summary_status=0 arguments=() failed python=.venv/bin/python
    if [ "$status" -ne 0 ] && [ -n "$stage" ]; then
        failed_stages+=("$stage")  # stopped by `set -e` in this stage
    fi
    for failed in "${failed_stages[@]}"; do arguments+=(--failed "$failed"); done
    [ -x "$python" ] || python=python3
    echo "=== summary"
    "$python" scripts/summarise_tests.py "${arguments[@]}" "$REPORTS"/*.xml || summary_status=$?
    rm -rf "$REPORTS"
    [ "$status" -ne 0 ] && exit "$status"
    exit "$summary_status"
}
trap summarise EXIT

begin "setup"
source scripts/bootstrap.sh
ensure_venv requirements-dev.txt
ensure_promtool
ensure_debian_packages postgresql redis-server  # the reliability scenarios run their own servers

POSTGRES_URL=${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/flask_api_test}
MYSQL_URL=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/flask_api_test}

begin "lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet app tests scripts bench manage.py run.py gunicorn.conf.py
.venv/bin/lint-imports --no-cache  # no module imports from a layer above it (pyproject.toml)

rm -f .coverage .coverage.*
run_suite() {  # run_suite NAME DATABASE_URL [pytest arguments]: a failure is counted, and the runs go on
    local name=$1 url=$2 report="$REPORTS/tests on $1.xml"
    shift 2
    begin "tests on $name"
    TEST_DATABASE_URL=$url .venv/bin/python -m pytest --cov --cov-append --cov-report= --junitxml="$report" "$@" \
        || failed_stages+=("tests on $name=$report")
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
        failed_stages+=("preparing the $name test database")
    fi
done
stage=""  # its failures are recorded; the rest would only take longer to say so
[ ${#failed_stages[@]} -eq 0 ] || exit 1

begin "coverage of app/"
# The test processes and the servers they start (gunicorn's master and its workers, `python run.py`,
# `flask run`): each writes its own .coverage.* file ([tool.coverage.run] in pyproject.toml), each run
# combines them into .coverage at its end, and `coverage report` combines any written later.
.venv/bin/python -m coverage report --fail-under=90

# Fuzzing from the OpenAPI document (tests/fuzz/run.py), on PostgreSQL like production.
begin "fuzzing (schemathesis)"
fuzz_status=0
.venv/bin/python -m tests.fuzz.run --max-examples 25 --database-url "${POSTGRES_URL%/*}/flask_api_fuzz" \
    --junit "$REPORTS/fuzzing.xml" || fuzz_status=$?
if [ "$fuzz_status" -eq 3 ] && [ "${CI:-}" != "true" ]; then
    echo "WARNING: PostgreSQL is unreachable; fuzzing is skipped (with CI=true this fails)." >&2
elif [ "$fuzz_status" -ne 0 ]; then
    failed_stages+=("fuzzing=$REPORTS/fuzzing.xml")
    stage=""
    exit 1
fi

# The reliability scenarios (tests/load/) in their short form; `python -m tests.load` is the long one.
begin "reliability scenarios"
.venv/bin/python -m tests.load --short

# The benchmark's smoke form: every scenario runs and answers without errors (no targets: see bench/).
begin "benchmark (smoke)"
./bench/run.sh --smoke --database-url "${POSTGRES_URL%/*}/flask_api_bench"

# The image: podman, debootstrap and friends come from Debian's packages, which needs root.
if [ "${CI:-}" = "true" ] || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }; then
    begin "container check"
    ./scripts/container-check.sh
else
    echo "WARNING: the container check needs root and apt-get; run ./scripts/container-check.sh where it can." >&2
fi
