"""The benchmark's own PostgreSQL database: refused unless named for it, re-created, migrated, and
filled with users sharing one password, the first of them an administrator; and access tokens."""

from __future__ import annotations

import secrets
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from app.auth.tokens import issue_tokens
from app.extensions import current_passwords, db
from app.models import Role, TokenFamily, User
from app.models.base import utcnow
from tests.processes import ROOT

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/flask_api_bench"
PASSWORD = "bench-password-Zq7!x"  # noqa: S105 (every seeded user's; a throwaway database)


def username(number: int) -> str:
    return f"bench{number:06d}"


def refuse_foreign_database(database_url: str) -> None:
    """The benchmark drops its database: only one named for it."""
    name = database_url.rsplit("/", 1)[-1].split("?")[0]
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the benchmark's database name must contain 'bench'")


def prepare_database(database_url: str, env: dict[str, str], workdir: Path) -> None:
    """Drop and re-create the benchmark's own database, then apply the migrations (manage.py init-db)."""
    for command in (
        [sys.executable, str(ROOT / "scripts" / "create_test_database.py"), database_url],
        [sys.executable, str(ROOT / "manage.py"), "init-db"],
    ):
        finished = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
        if finished.returncode:
            raise SystemExit(f"{shlex.join(command)} failed:\n{finished.stdout}{finished.stderr}")


def seed_users(app, *, count: int) -> str:
    """`count` users sharing one password hash made at the service's cost; returns the hash. The
    benchmark logs in as the first, an administrator: it sees every user's whole record."""
    with app.app_context():
        password_hash = current_passwords().hash(PASSWORD)
        now = datetime.now(UTC)
        batch = 10_000
        for first in range(1, count + 1, batch):
            rows = [
                {
                    "username": username(number),
                    "email": f"{username(number)}@example.com",
                    "password_hash": password_hash,
                    "role": Role.ADMIN if number == 1 else Role.USER,
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for number in range(first, min(first + batch, count + 1))
            ]
            db.session.execute(User.__table__.insert(), rows)
        db.session.commit()
        if db.session.scalar(select(func.count()).select_from(User)) != count:
            raise RuntimeError("the users table does not hold exactly the seeded users")
        # As autovacuum would leave a table that has lived a while: planner statistics and a visibility
        # map (which lets count(*) and OFFSET walk the index without reading every row).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE users"))
    return password_hash


def access_token(app) -> str:
    """An access token of the first user for a new login of theirs, made as the login route makes
    one, without hashing a password in this process."""
    with app.app_context():
        user = db.session.get(User, 1)
        if user is None:
            raise SystemExit("the database has no users: run bench/run.sh --smoke first")
        family = TokenFamily(user=user, refresh_jti=secrets.token_hex(16), expires_at=utcnow() + timedelta(hours=1))
        db.session.add(family)
        db.session.commit()
        token = issue_tokens(user_id=user.id, family=family, expires_in=timedelta(minutes=15))["access_token"]
        db.session.remove()
        return token
