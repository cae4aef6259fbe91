"""The benchmark: what the service costs per request over its floors on the same machine, a bare
Flask app (bare_app.py) and a hand-written Flask app doing the same work (reference_app.py).

Every app runs under gunicorn on loopback with the service's settings as a user gets them, on one
PostgreSQL database seeded with N users. wrk drives them in turn, round after round, in one order
and the other way round in the next; the server's CPU per request is read from /proc around each
wrk run. Every ratio compares figures of the same round and the table shows medians over rounds,
so that a noisy machine moves both sides alike.

Run it with bench/run.sh (which installs wrk and the venv); `bench/run.sh --help` lists the options.
By job: plan.py (the sizes and the probes), seed.py (the database, tokens), servers.py (the apps
under gunicorn, their CPU and memory, the tracing collector), wrk.py (sending the load),
scenarios.py (the scenarios), report.py (medians, the tables and targets, RESULTS.md), __main__.py
(the command line).
"""

from pathlib import Path

BENCH = Path(__file__).resolve().parent
