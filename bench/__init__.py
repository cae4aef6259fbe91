"""The benchmark: what the service costs per request over a bare Flask app on the same machine.

Both apps run under gunicorn on loopback with the service's production settings, on one PostgreSQL
database seeded with N users. wrk drives them in turn, round after round, first one app then the
other and the other way round in the next round; every ratio compares figures of the same round and
the table shows medians over rounds, so that a noisy machine moves both sides alike.

Run it with bench/run.sh (which installs wrk and the venv); `bench/run.sh --help` lists the options.
By job: plan.py (the sizes and the probes), seed.py (the database), servers.py (the two apps under
gunicorn), wrk.py (sending the load), scenarios.py (the six scenarios), report.py (medians, the
tables, RESULTS.md), __main__.py (the command line).
"""

from pathlib import Path

BENCH = Path(__file__).resolve().parent
