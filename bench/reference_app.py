"""The same-work reference: what the service's authenticated routes must do, written by hand in Flask.

Per request: verify the bearer token with PyJWT (the service's secret, algorithm and claims), check
with one Core query that its login is live and its user active (what makes revocation and disabling
immediate), run the route's own query, and answer JSON shaped as the service's. No hooks, no
logging, no metrics, no ORM. It is the floor for doing this work in Flask: the benchmark serves it
under the service's gunicorn settings, with the URL, engine options and JWT secret of the service
in FLOOR_DATABASE_URI, FLOOR_ENGINE_OPTIONS (JSON) and FLOOR_JWT_SECRET_KEY, and sends it the
service's own tokens.
"""

import json
import math
import os
from datetime import UTC, datetime

import jwt
from flask import Flask, request
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["FLOOR_DATABASE_URI"], **json.loads(os.environ["FLOOR_ENGINE_OPTIONS"]))
JWT_SECRET_KEY = os.environ["FLOOR_JWT_SECRET_KEY"]
# One query: the token's user, if its login is live and the user active.
ACTIVE_LOGIN_USER = text(
    "SELECT u.id, u.username, u.created_at, u.email, u.role, u.is_active, u.updated_at "
    "FROM users u JOIN token_families f ON f.user_id = u.id "
    "WHERE u.id = :user_id AND u.is_active AND f.id = :family_id AND f.revoked_at IS NULL AND f.expires_at > :now"
)
USER_BY_ID = text("SELECT id, username, created_at, email, role, is_active, updated_at FROM users WHERE id = :id")
USERS_COUNT = text("SELECT count(*) FROM users")
USERS_PAGE = text(
    "SELECT id, username, created_at, email, role, is_active, updated_at FROM users "
    "ORDER BY id LIMIT :limit OFFSET :offset"
)

app = Flask(__name__)


def unauthorized():
    return {"error": {"code": "unauthorized", "message": "The token is invalid.", "details": []}}, 401


def caller(connection):
    """The token's user, if the token is valid, its login live and the user active; None otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        claims = jwt.decode(token, JWT_SECRET_KEY, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return None
    if scheme != "Bearer" or claims.get("type") != "access" or not str(claims.get("sub", "")).isdigit():
        return None
    now = datetime.now(UTC).replace(tzinfo=None)  # stored as naive UTC
    parameters = {"user_id": int(claims["sub"]), "family_id": claims.get("fam"), "now": now}
    return connection.execute(ACTIVE_LOGIN_USER, parameters).first()


def present(user, *, viewer) -> dict:
    """The whole record for its owner and admins, the public fields for others."""
    shown = {"id": user.id, "username": user.username, "created_at": user.created_at.isoformat() + "Z"}
    if viewer.role == "admin" or viewer.id == user.id:
        shown |= {
            "email": user.email,
            "role": user.role,
            "is_active": user.is_active,
            "updated_at": user.updated_at.isoformat() + "Z",
        }
    return shown


@app.get("/api/v1/health/live")
def liveness():  # for the benchmark to see it has started
    return {"status": "ok"}


@app.get("/api/v1/users/me")
def me():
    with engine.connect() as connection:
        viewer = caller(connection)
    return unauthorized() if viewer is None else present(viewer, viewer=viewer)


@app.get("/api/v1/users/<int:user_id>")
def user_by_id(user_id: int):
    with engine.connect() as connection:
        if (viewer := caller(connection)) is None:
            return unauthorized()
        user = connection.execute(USER_BY_ID, {"id": user_id}).first()
    if user is None:
        return {"error": {"code": "not_found", "message": "No such user.", "details": []}}, 404
    return present(user, viewer=viewer)


@app.get("/api/v1/users")
def users_page():
    page = max(request.args.get("page", 1, type=int), 1)
    per_page = min(max(request.args.get("per_page", 20, type=int), 1), 100)
    with engine.connect() as connection:
        if (viewer := caller(connection)) is None:
            return unauthorized()
        total = connection.scalar(USERS_COUNT)
        users = connection.execute(USERS_PAGE, {"limit": per_page, "offset": (page - 1) * per_page}).all()
    return {
        "items": [present(user, viewer=viewer) for user in users],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": math.ceil(total / per_page),
    }
