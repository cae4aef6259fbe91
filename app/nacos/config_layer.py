"""Configuration from Nacos as a layer of the settings: which configs, how they read, where each setting comes from.

The configs are named as Spring Cloud Alibaba names them, lowest precedence first (later wins):
the shared ones (NACOS_CONFIG_SHARED), then `${prefix}`, `${prefix}.${ext}` and
`${prefix}-${FLASK_ENV}.${ext}`. Each is YAML, Java properties or JSON, by the type Nacos gives it,
else by its dataId's extension. Nested maps flatten: `log: {level: DEBUG}` (or the properties line
`log.level=DEBUG`) is LOG_LEVEL. A key that names a setting (any case) is that setting's value; any
other key is the application's own, read through app/nacos/app_config.py under its dotted path as
written (`feature: {new_checkout: true}` is `feature.new_checkout`).

Precedence, highest first: the process environment, Nacos, `.env`, the defaults (load_settings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jproperties
import structlog
import yaml

from app.config import GROUPS, SETTING_NAMES, Settings, load_settings

# Re-exported: the rest of app/nacos reads what it needs of app.config through this module.
from app.config import RATE_LIMIT_SETTINGS as RATE_LIMIT_SETTINGS
from app.nacos.config_types import ConfigContent, ConfigKey
from app.nacos.settings import NacosSettings
from app.settings_group import in_environment

log = structlog.get_logger(__name__)

FORMATS = {"yaml": "yaml", "yml": "yaml", "properties": "properties", "json": "json"}
# Nacos's type for a config published without one: say nothing of the format, go by the extension.
UNTYPED = {None, "", "text"}


class ConfigRejected(Exception):
    """A config's content cannot be used. The message names the config and where, never a value."""

    def __init__(self, key: ConfigKey, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class NacosLayer:
    settings: dict[str, Any] = field(default_factory=dict)  # setting name -> value
    sources: dict[str, ConfigKey] = field(default_factory=dict)  # setting name -> the config it came from
    app_values: dict[str, Any] = field(default_factory=dict)  # the application's own keys, dotted
    contents: tuple[ConfigContent, ...] = ()


def config_keys(settings: NacosSettings, *, profile: str) -> list[ConfigKey]:
    """The configs to read, lowest precedence first."""
    group, prefix, extension = settings.config_group, settings.config_prefix, settings.NACOS_CONFIG_FILE_EXTENSION
    shared = [_shared_key(entry, group) for entry in settings.NACOS_CONFIG_SHARED]
    own = [
        ConfigKey(data_id, group) for data_id in (prefix, f"{prefix}.{extension}", f"{prefix}-{profile}.{extension}")
    ]
    return list(dict.fromkeys([*shared, *own]))  # a config named twice is read once, at its first place


def _shared_key(entry: str, default_group: str) -> ConfigKey:
    data_id, _, group = entry.partition("@")
    return ConfigKey(data_id, group or default_group)


def build_layer(contents: Iterable[ConfigContent], *, default_format: str = "yaml") -> NacosLayer:
    """The settings and the application's own values the contents hold, later contents winning.

    `default_format`: for a config neither its type nor its dataId's extension names (`${prefix}`):
    NACOS_CONFIG_FILE_EXTENSION. Raises ConfigRejected for a content that does not parse.
    """
    contents = tuple(contents)
    settings: dict[str, Any] = {}
    sources: dict[str, ConfigKey] = {}
    app_values: dict[str, Any] = {}
    for content in contents:
        if content.content is None:
            continue
        for path, value in _flatten(_parse(content, default_format=default_format)):
            name = "_".join(path).upper()
            if name in SETTING_NAMES:
                settings[name] = value
                sources[name] = content.key
            else:
                app_values[".".join(path)] = value
    return NacosLayer(settings=settings, sources=sources, app_values=app_values, contents=contents)


def content_format(content: ConfigContent, *, default_format: str = "yaml") -> str | None:
    """yaml, properties or json; None when the config is of another type (xml, html, ...)."""
    if content.type not in UNTYPED:
        return FORMATS.get(content.type.lower())
    _, dot, extension = content.key.data_id.rpartition(".")
    return (dot and FORMATS.get(extension.lower())) or FORMATS.get(default_format)


def _parse(content: ConfigContent, *, default_format: str) -> dict[str, Any]:
    key, text = content.key, content.content or ""
    parse_as = content_format(content, default_format=default_format)
    if parse_as is None:
        raise ConfigRejected(key, f"type {content.type!r} is not one of yaml, properties, json")
    # The messages say where, never what: the line may hold a secret.
    try:
        if parse_as == "yaml":
            parsed = yaml.safe_load(text)
        elif parse_as == "json":
            parsed = json.loads(text) if text.strip() else None
        else:
            parsed = _parse_properties(key, text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigRejected(
            key, f"is not valid YAML ({getattr(exc, 'problem', None) or 'syntax error'}{where})"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigRejected(key, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except jproperties.ParseError as exc:
        raise ConfigRejected(key, f"is not a valid properties file (line {exc.line_number})") from None
    if parsed is None:  # an empty config
        return {}
    if not isinstance(parsed, dict):
        raise ConfigRejected(key, f"is not a map of keys to values ({parse_as})")
    return parsed


def _parse_properties(key: ConfigKey, text: str) -> dict[str, Any]:
    """Dotted keys as nested maps, as YAML would write them (`log.level` is `log: {level: ...}`)."""
    properties = jproperties.Properties()
    properties.load(text.encode("utf-8"), encoding="utf-8")
    nested: dict[str, Any] = {}
    for name, (value, _) in properties.items():
        *parents, leaf = name.split(".")
        node = nested
        for depth, parent in enumerate(parents, 1):
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ConfigRejected(key, f"{'.'.join(parents[:depth])!r} has a value and keys under it")
        if isinstance(node.get(leaf), dict):
            raise ConfigRejected(key, f"{name!r} has a value and keys under it")
        node[leaf] = value
    return nested


def _flatten(values: Mapping[Any, Any], parents: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    """(path, value) for each leaf; a map stays whole where its path names a setting (NACOS_METADATA)."""
    for name, value in values.items():
        path = (*parents, str(name))
        if isinstance(value, dict) and "_".join(path).upper() not in SETTING_NAMES:
            yield from _flatten(value, path)
        else:
            yield path, value


# -- the settings with the layer ------------------------------------------------------------------


def settings_with_layer(layer: NacosLayer) -> Settings:
    """The settings from the environment, the layer and `.env`: a refused value names its config."""
    return load_settings(nacos=layer.settings, nacos_sources={name: str(key) for name, key in layer.sources.items()})


def setting_sources(settings: Settings, layer: NacosLayer) -> dict[str, str]:
    """Where each setting's value comes from: "environment", a config ("dataId@group"), ".env" or
    "default". Names only, never values."""
    sources = {}
    for group_name in GROUPS:
        group = getattr(settings, group_name)
        for name in type(group).model_fields:
            if in_environment(name):
                sources[name] = "environment"
            elif name in layer.sources:
                sources[name] = str(layer.sources[name])
            elif name in group.model_fields_set:
                sources[name] = ".env"
            else:
                sources[name] = "default"
    return dict(sorted(sources.items()))


_warned_shadowed: set[tuple[str, ConfigKey]] = set()


def warn_shadowed(layer: NacosLayer) -> list[str]:
    """Log, once per process, the Nacos values the environment overrides; returns their names."""
    shadowed = sorted(name for name in layer.settings if in_environment(name))
    new = [name for name in shadowed if (name, layer.sources[name]) not in _warned_shadowed]
    if new:
        _warned_shadowed.update((name, layer.sources[name]) for name in new)
        log.warning(
            "the environment overrides these Nacos values",
            settings={name: str(layer.sources[name]) for name in new},
        )
    return shadowed
