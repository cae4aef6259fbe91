"""Drop and re-create an empty database for a test run: python scripts/create_test_database.py URL

Exits 3 when the server cannot be reached, so that the caller can tell "down" from "broken".
"""

import re
import sys
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.config import normalise_database_url

UNREACHABLE = 3


def recreate(database_url: str) -> None:
    url = make_url(normalise_database_url(database_url))
    name = url.database or ""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"refusing an unusual database name: {name!r}")
    if url.get_backend_name() == "postgresql":
        server = url.set(database="postgres")
        statements = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"']
    elif url.get_backend_name() == "mysql":
        server = url.set(database="")
        statements = [
            f"DROP DATABASE IF EXISTS `{name}`",
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        ]
    else:
        raise SystemExit(f"not a server database: {url.get_backend_name()}")
    engine = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    except OperationalError as exc:
        print(f"cannot reach {url.render_as_string(hide_password=True)}: {exc.orig}", file=sys.stderr)
        raise SystemExit(UNREACHABLE) from None
    finally:
        engine.dispose()


if __name__ == "__main__":
    recreate(sys.argv[1])
