"""Reliability scenarios: the service under gunicorn, loaded from many clients while its
dependencies fail, with pass/fail criteria. Run with `python -m tests.load [--short] [scenario ...]`."""
