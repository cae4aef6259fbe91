#!/bin/sh
# Applies the migrations (unless MIGRATE_ON_START=false, e.g. when a release job migrates), then
# becomes the command: with exec, gunicorn is PID 1 and gets `docker stop`'s SIGTERM itself, so it
# deregisters from Nacos, drains and stops gracefully.
set -e
if [ "${MIGRATE_ON_START:-true}" = "true" ]; then
    python manage.py init-db
fi
exec "$@"
