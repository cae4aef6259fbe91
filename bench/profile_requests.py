"""Where the service's time goes per request, without a server or a network in the way.

    .venv/bin/python bench/profile_requests.py [--route liveness|me|get-by-id|list|list-last] [--profile] [--help]

Calls the service's WSGI app and its floor directly, in this process (the bare app's JSON route for
liveness, bench/reference_app.py for the authenticated routes), on the
database bench/run.sh prepared (run it first, e.g. with --smoke), and prints the CPU time per
request of each: the best of several batches, taken in turns, so that other work on the machine
inflates neither. With --profile it also prints pyinstrument's call tree of the service's requests
(pip install pyinstrument). Metrics run in multiprocess mode and logs are written (to /dev/null),
as under gunicorn.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import io
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

# As gunicorn.conf.py does before the app is imported: counters go to files, one per process.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="flask-api-profile-")
atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app import create_app  # noqa: E402
from app.config import ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_TIME_COST  # noqa: E402
from bench.seed import DEFAULT_DATABASE_URL, access_token  # noqa: E402

ROUTES = {  # the service's path; the floor app and its path
    "liveness": ("/api/v1/health/live", "bare_app", "/json"),
    "me": ("/api/v1/users/me", "reference_app", "/api/v1/users/me"),
    "get-by-id": ("/api/v1/users/{id}", "reference_app", "/api/v1/users/{id}"),
    "list": ("/api/v1/users?page=1&per_page=20", "reference_app", "/api/v1/users?page=1&per_page=20"),
    # The last page of bench/run.sh's 100,000 users (past the end, so empty, on a smaller database).
    "list-last": ("/api/v1/users?page=5000&per_page=20", "reference_app", "/api/v1/users?page=5000&per_page=20"),
}


def environ(path: str, headers: dict[str, str]) -> dict:
    raw_path, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": raw_path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    }


def call(app, path: str, headers: dict[str, str]) -> str:
    statuses = []
    body = app(environ(path, headers), lambda status, _headers, _exc=None: statuses.append(status))
    b"".join(body)
    if hasattr(body, "close"):
        body.close()
    return statuses[0]


def per_request_seconds(app, template: str, headers: dict[str, str], *, requests: int, users: int) -> float:
    """CPU seconds per request over `requests` calls with ids cycling through 1..users."""
    started = time.process_time()
    for number in range(requests):
        status = call(app, template.replace("{id}", str(number % users + 1)), headers)
        if not status.startswith("200"):
            raise RuntimeError(f"{template}: {status}")
    return (time.process_time() - started) / requests


@contextmanager
def stderr_to_devnull():
    """The access log is written, as in production, but not onto the terminal."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--route", choices=ROUTES, default="get-by-id")
    parser.add_argument("--requests", type=int, default=500, help="per batch")
    parser.add_argument("--batches", type=int, default=7, help="measured batches, after one that warms up")
    parser.add_argument("--app", choices=("both", "ours", "floor"), default="both", help="which app to call")
    parser.add_argument("--profile", action="store_true", help="print pyinstrument's call tree of the service")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    arguments = parser.parse_args()

    service = create_app(
        {
            "FLASK_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(30),
            "JWT_SECRET_KEY": secrets.token_urlsafe(30),
            "DATABASE_URL": arguments.database_url,
            "NACOS_ENABLED": "false",
            "RATE_LIMIT_ENABLED": "false",
            # Nothing measured here hashes a password: the cheapest cost production accepts keeps
            # the start short (it hashes once), which matters under valgrind.
            "ARGON2_MEMORY_COST": str(ARGON2_MIN_MEMORY_KIB),
            "ARGON2_TIME_COST": str(ARGON2_MIN_TIME_COST),
            "ARGON2_PARALLELISM": "1",
        }
    )
    os.environ["FLOOR_DATABASE_URI"] = service.config["SQLALCHEMY_DATABASE_URI"]
    os.environ["FLOOR_ENGINE_OPTIONS"] = json.dumps(service.config["SQLALCHEMY_ENGINE_OPTIONS"])
    os.environ["FLOOR_JWT_SECRET_KEY"] = service.config["JWT_SECRET_KEY"]
    ours_path, floor_module, floor_path = ROUTES[arguments.route]
    floor = importlib.import_module(floor_module).app

    headers = {"Authorization": f"Bearer {access_token(service)}"}
    users = 100  # ids 1..100: present in every seeded database
    apps = {"ours": (service, ours_path, headers), "floor": (floor, floor_path, headers)}
    apps = {name: app for name, app in apps.items() if arguments.app in ("both", name)}
    best = dict.fromkeys(apps, float("inf"))
    with stderr_to_devnull():
        for batch in range(arguments.batches + 1):  # the first batch only warms up
            for name, (app, path, app_headers) in apps.items():
                seconds = per_request_seconds(app, path, app_headers, requests=arguments.requests, users=users)
                if batch:
                    best[name] = min(best[name], seconds)
        profile = None
        if arguments.profile:
            from pyinstrument import Profiler

            with Profiler(interval=0.0002) as profile:
                per_request_seconds(service, ours_path, headers, requests=arguments.requests, users=users)

    figures = ", ".join(f"{name} {seconds * 1e6:.0f} µs" for name, seconds in best.items())
    print(f"{arguments.route}: {figures}", end="")
    if len(best) == 2:
        ours, floor_seconds = best["ours"], best["floor"]
        print(
            f" of CPU per request ({floor_module}): the service adds {(ours - floor_seconds) * 1e6:.0f} µs "
            f"({ours / floor_seconds:.2f}x)"
        )
    else:
        print(" of CPU per request")
    if profile is not None:
        print(profile.output_text(unicode=True, color=False, show_all=False, time="percent_of_total"))


if __name__ == "__main__":
    main()
