"""Distributed tracing with OpenTelemetry, off unless the standard OTEL_* variables turn it on.

Off, nothing here imports OpenTelemetry and no hook is added: the request path is untouched. On,
`init_tracing` (the app factory; in each gunicorn worker, since the app is built there, after the
fork) starts the SDK in this process and instruments the app, its database, Redis and outbound
HTTP; `stop_tracing` (gunicorn's worker_exit, and at exit) sends what is left, in bounded time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from flask import Flask

from app.config import Settings
from app.settings_group import ConfigError

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """On when a collector is named and the SDK is neither disabled nor told to export nowhere,
    as the OpenTelemetry specification reads these variables."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def init_tracing(app: Flask, settings: Settings, *, version: str) -> None:
    if not tracing_enabled():
        return
    try:
        from app.tracing import sdk  # only now: with tracing off, OpenTelemetry is never imported
    except ValueError as exc:  # importing opentelemetry.propagate reads OTEL_PROPAGATORS
        raise ConfigError(f"OTEL_PROPAGATORS: {exc}") from None

    sdk.start(settings, version=version)
    sdk.instrument(app, settings)


def stop_tracing() -> None:
    """Send the spans still queued, waiting a bounded time; nothing to do when tracing never started."""
    sdk = sys.modules.get("app.tracing.sdk")  # imported by init_tracing, with tracing on
    if sdk is not None:
        sdk.stop()
