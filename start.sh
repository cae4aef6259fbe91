#!/usr/bin/env bash
# One command from a fresh clone to the development server on http://localhost:5000, on SQLite:
# creates .venv, installs the locked requirements, writes .env from config.env on first run
# (with random secrets in place of the placeholders), applies the migrations, then serves.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_venv requirements.txt

if [ ! -f .env ]; then
    .venv/bin/python - <<'PY'
import pathlib
import secrets

text = pathlib.Path("config.env").read_text()
for placeholder in ("your-secret-key-here", "jwt-secret-key"):
    text = text.replace(f"={placeholder}\n", f"={secrets.token_urlsafe(48)}\n", 1)
pathlib.Path(".env").write_text(text)
PY
    echo "Created .env from config.env, with random SECRET_KEY and JWT_SECRET_KEY."
fi

.venv/bin/python manage.py init-db
exec .venv/bin/python run.py
