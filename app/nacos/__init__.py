"""Nacos: this service's registration, and other services' discovery.

Application code calls other services through the functions here:

    from app.nacos import call_service, choose_instance
    response = call_service("user-service", "GET", "/api/v1/users/me", headers={...})
"""

from __future__ import annotations

import requests

from app.extensions import current_discovery
from app.nacos.client import Instance
from app.nacos.discovery import Discovery, NoInstanceAvailable
from app.nacos.discovery import call_service as _call_service

__all__ = ["Instance", "NoInstanceAvailable", "call_service", "choose_instance", "instances"]


def _discovery() -> Discovery:
    return current_discovery()


def instances(service_name: str, *, healthy_only: bool = True) -> list[Instance]:
    """The instances Nacos lists for a service (cached; the last good list while Nacos is down)."""
    return _discovery().instances(service_name, healthy_only=healthy_only)


def choose_instance(service_name: str) -> Instance:
    """A healthy instance, chosen at random by weight; raises NoInstanceAvailable."""
    return _discovery().choose(service_name)


def call_service(service_name: str, method: str, path: str, **kwargs) -> requests.Response:
    """An HTTP request to the service, trying another instance when one cannot be reached."""
    return _call_service(_discovery(), service_name, method, path, **kwargs)
