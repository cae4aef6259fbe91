"""Nacos: this service's registration, and other services' discovery.

Application code calls other services through the functions here:

    from app.nacos import call_service, choose_instance
    response = call_service("user-service", "GET", "/api/v1/users/me", headers={...})

and the application's own configuration in Nacos through `config` (app/nacos/app_config.py):

    from app.nacos import config
    enabled = config.value("feature.new_checkout", default=False)

The app factory calls init_nacos(); gunicorn.conf.py calls app/nacos/process.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests
from flask import Flask

from app.core.metrics import ScrapedSection, add_scraped_section
from app.extensions import DISCOVERY, current_discovery
from app.nacos import app_config as config
from app.nacos.client import Instance
from app.nacos.discovery import Discovery, NoInstanceAvailable
from app.nacos.discovery import call_service as _call_service
from app.nacos.process import flask_run_options, prepare_development_server
from app.nacos.registrar import client_from_settings
from app.nacos.settings import NacosSettings
from app.nacos.state import scraped_figures, scraped_metrics

if TYPE_CHECKING:
    from app.nacos.config_watcher import ConfigStart

__all__ = [
    "Instance",
    "NoInstanceAvailable",
    "call_service",
    "choose_instance",
    "config",
    "init_nacos",
    "instances",
]


def init_nacos(app: Flask, settings: NacosSettings, *, version: str, config: ConfigStart | None = None) -> None:
    """Discovery for application code, the registration's figures in every scrape, and, when
    `flask run` is building the app, the development server's registration and the watching of the
    configuration read at start (`config`), last: the app is built."""
    # Lazy: nothing talks to Nacos until a service is looked up.
    app.extensions[DISCOVERY] = (
        Discovery(client=client_from_settings(settings), group=settings.NACOS_GROUP) if settings.NACOS_ENABLED else None
    )
    add_scraped_section("nacos", ScrapedSection(figures=scraped_figures, metrics=scraped_metrics))
    if (flask_run := flask_run_options()) is not None:
        port, reloader = flask_run
        prepare_development_server(settings, port=port, reloader=reloader, version=version, config=config)


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
