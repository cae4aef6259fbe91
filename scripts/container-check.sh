#!/usr/bin/env bash
# The container check: lint the Dockerfile, validate docker-compose.yml, build the image with podman,
# run it, wait for its healthcheck, register/log in/check health inside it, then stop it with
# SIGTERM and require a clean, quick exit. Fails when the image is broken.
#
# No registry can be pulled from here, so the image's Python base is built locally with debootstrap
# (Debian bookworm, as python:3.11-slim-bookworm) and passed as PYTHON_IMAGE; it is kept between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_venv requirements-dev.txt

ensure_debian_packages podman runc debootstrap docker-compose curl

echo "=== hadolint"
.venv/bin/hadolint Dockerfile

echo "=== docker-compose.yml"
SECRET_KEY=check JWT_SECRET_KEY=check docker-compose -f docker-compose.yml config -q
SECRET_KEY=check JWT_SECRET_KEY=check docker-compose -f docker-compose.yml --profile tracing config -q

BASE=localhost/flask-api-python-base:bookworm
IMAGE=localhost/flask-api:check
CONTAINER=flask-api-check
# runc rather than crun: crun refuses hosts whose cgroups are in hybrid v1/v2 mode.
PODMAN=(podman --runtime runc)
# Podman wants systemd for healthcheck timers; there is none here, and the loop below runs the check.
quiet_systemd() { grep -v 'systemd connection' >&2 || true; }
if ! "${PODMAN[@]}" image exists "$BASE"; then
    echo "=== base image (debootstrap; once per machine)"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
    rm -rf "$rootfs"
fi

echo "=== build"
# --format docker: the OCI format has no HEALTHCHECK.
# The host's CA bundle, for machines that reach PyPI through a TLS-inspecting proxy.
"${PODMAN[@]}" build --quiet --format docker --build-arg PYTHON_IMAGE="$BASE" \
    --volume /etc/ssl/certs/ca-certificates.crt:/tmp/host-ca.pem:ro --build-arg PIP_CERT=/tmp/host-ca.pem \
    -t "$IMAGE" . >/dev/null

echo "=== run (with the tests' fake Nacos on the host)"
free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
NACOS_PORT=$(free_port)
.venv/bin/python -m tests.nacos.fake_nacos "$NACOS_PORT" &
NACOS_PID=$!
"${PODMAN[@]}" rm -f "$CONTAINER" >/dev/null 2>&1 || true
trap '"${PODMAN[@]}" rm -f "$CONTAINER" >/dev/null 2>&1 || true; kill $NACOS_PID 2>/dev/null || true' EXIT
instances() {
    curl -sf "http://127.0.0.1:$NACOS_PORT/nacos/v1/ns/instance/list?serviceName=flask-api" |
        .venv/bin/python -c 'import json, sys; print(len(json.load(sys.stdin)["hosts"]))'
}
secret() { .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(40))'; }
# --health-interval=disable: no systemd here to run podman's timer; the loop below runs the check.
"${PODMAN[@]}" run -d --name "$CONTAINER" --network host --health-interval=disable \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    -e PORT="$PORT" -e HOST=127.0.0.1 -e WEB_CONCURRENCY=2 -e RATE_LIMIT_ALLOW_MEMORY=true \
    -e NACOS_SERVER_ADDR="127.0.0.1:$NACOS_PORT" -e NACOS_SERVICE_IP=127.0.0.1 -e NACOS_DRAIN_SECONDS=2 \
    -e SECRET_KEY="$(secret)" -e JWT_SECRET_KEY="$(secret)" \
    "$IMAGE" > /dev/null 2> >(quiet_systemd)

# Without systemd podman runs no healthcheck timer; run the image's own check until it passes.
healthy=false
for _ in $(seq 1 60); do
    if "${PODMAN[@]}" healthcheck run "$CONTAINER" >/dev/null 2>&1; then healthy=true; break; fi
    [ "$("${PODMAN[@]}" inspect "$CONTAINER" --format '{{.State.Running}}')" = true ] || break  # it died
    sleep 1
done
if [ "$healthy" != true ]; then
    "${PODMAN[@]}" logs "$CONTAINER" | tail -20
    echo "FAILED: the container never became healthy" >&2
    exit 1
fi
echo "healthy"

base="http://127.0.0.1:$PORT"
user='{"username": "container", "email": "container@example.com", "password": "violet anchor 42 drums"}'
test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/auth/register" -H 'Content-Type: application/json' -d "$user")" = 201
token=$(curl -sf -X POST "$base/auth/login" -H 'Content-Type: application/json' \
    -d '{"username": "container", "password": "violet anchor 42 drums"}' | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
curl -sf "$base/api/v1/users/me" -H "Authorization: Bearer $token" >/dev/null
curl -sf "$base/api/v1/health" | grep -q '"status":"ok"'
test "$("${PODMAN[@]}" exec "$CONTAINER" id -u)" != 0
if "${PODMAN[@]}" exec "$CONTAINER" sh -c 'command -v gcc || command -v cc' >/dev/null; then
    echo "FAILED: build tools in the final image" >&2
    exit 1
fi
test "$(instances)" = 1
echo "register, login, health: ok; one instance in Nacos; runs as non-root; no compiler"

echo "=== stop"
started=$(date +%s)
"${PODMAN[@]}" stop --time 30 "$CONTAINER" > /dev/null 2> >(quiet_systemd)
took=$(( $(date +%s) - started ))
code=$("${PODMAN[@]}" inspect "$CONTAINER" --format '{{.State.ExitCode}}')
order=$("${PODMAN[@]}" logs "$CONTAINER" 2>&1 | grep -o -E '"(deregistered from nacos|Shutting down: Master)"' | tr '\n' ' ')
if [ "$order" != '"deregistered from nacos" "Shutting down: Master" ' ]; then
    echo "FAILED: want deregistration, then gunicorn's shutdown; got: $order" >&2
    exit 1
fi
test "$(instances)" = 0
if [ "$code" != 0 ] || [ "$took" -gt 15 ]; then
    echo "FAILED: exit code $code after ${took}s (want 0, within 15s)" >&2
    exit 1
fi
echo "SIGTERM (PID 1 = gunicorn): deregistered, drained, exit 0 after ${took}s"
echo "container check passed"
