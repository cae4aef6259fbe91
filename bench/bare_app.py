"""The floor the service is measured against: plain Flask and one SQLAlchemy engine, nothing else.

No middleware, no hooks, no validation, no logging per request. The benchmark serves it under
gunicorn with the service's own gunicorn settings and hands it, in FLOOR_DATABASE_URI and
FLOOR_ENGINE_OPTIONS (JSON), the URL and engine options the service's app computed for itself, so
that both talk to PostgreSQL the same way. Its JSON route is what liveness is measured against; its
primary-key SELECT keeps a pool of connections open, as the service's workers do, for the memory
comparison.
"""

import json
import os

from flask import Flask, abort
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["FLOOR_DATABASE_URI"], **json.loads(os.environ["FLOOR_ENGINE_OPTIONS"]))
# The fields the service shows a logged-in user of someone else's account.
SELECT_USER = text("SELECT id, username, created_at FROM users WHERE id = :id")

app = Flask(__name__)


@app.get("/json")
def json_route():
    return {"status": "ok"}


@app.get("/users/<int:user_id>")
def user_by_primary_key(user_id: int):
    with engine.connect() as connection:
        row = connection.execute(SELECT_USER, {"id": user_id}).first()
    if row is None:
        abort(404)
    return {"id": row.id, "username": row.username, "created_at": row.created_at.isoformat()}
