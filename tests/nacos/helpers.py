"""Helpers for the Nacos tests: clients and registrations pointing at the fake, and waiting."""

from __future__ import annotations

from collections.abc import Callable

from app.nacos.client import NacosClient, Registration
from tests.processes import eventually, free_port


def dead_address() -> str:
    """A loopback port with nothing listening: connecting is refused at once."""
    return f"127.0.0.1:{free_port()}"


def make_client(*addresses: str, **kwargs) -> NacosClient:
    return NacosClient(addresses=list(addresses), namespace="public", timeout=2, **kwargs)


def make_registration(**overrides) -> Registration:
    values = {
        "service_name": "flask-api",
        "group": "DEFAULT_GROUP",
        "ip": "127.0.0.1",
        "port": 5000,
        "cluster": "DEFAULT",
        "weight": 1.0,
        "ephemeral": True,
        "metadata": {"version": "0.1.0"},
    }
    return Registration(**{**values, **overrides})


def wait_for(condition: Callable[[], object], *, timeout: float = 10, interval: float = 0.02) -> None:
    if not eventually(condition, timeout=timeout, interval=interval):
        raise AssertionError(f"condition not met within {timeout}s")
