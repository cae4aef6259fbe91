"""What every group of settings shares: where the values come from, how a comma list is read, and
the error that stops a start.

A leaf module: app/config.py and the packages that own a group (app/nacos/settings.py) build on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

# The values Nacos holds for the settings being built (app/nacos/config_layer.py), by setting name.
_nacos_values: ContextVar[Mapping[str, Any] | None] = ContextVar("nacos_values", default=None)


class ConfigError(SystemExit):
    """A setting is unusable.

    A SystemExit, so that wherever it escapes (run.py, flask run, manage.py) Python prints
    the one line and exits with status 1 instead of a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"Configuration error: {message}")


class SettingsGroup(BaseSettings):
    """Settings read from the environment and `.env` (load_settings names the file, or none).

    Every group reads the same sources, each taking the names it declares (extra="ignore"), so that
    one flat set of values, such as the environment, fills them all. `NAME=` in `.env` or
    `${NAME:-}` in compose means "not set", never "the empty string" (env_ignore_empty).
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first: the operator's environment wins over Nacos, Nacos over `.env`.
        return init_settings, env_settings, NacosSource(settings_cls), dotenv_settings, file_secret_settings


def in_environment(name: str) -> bool:
    """Whether the process environment sets the setting (as pydantic-settings reads it: any case, not empty)."""
    return any(key.upper() == name.upper() and value != "" for key, value in os.environ.items())


@contextmanager
def nacos_values(values: Mapping[str, Any] | None) -> Iterator[None]:
    """Within the block, the settings groups built read `values` (setting name -> value) as Nacos's."""
    token = _nacos_values.set(values)
    try:
        yield
    finally:
        _nacos_values.reset(token)


class NacosSource(PydanticBaseSettingsSource):
    """The values of the configs read from Nacos, keyed by setting name.

    Parsed YAML or JSON gives typed values (lists, maps, numbers) that are used as they are; a
    string for a structured setting (a properties file's NACOS_METADATA={"a": "b"}) is JSON, as in
    the environment.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_nacos_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is None or value == "":  # as in the environment: empty is "not set"
                continue
            if isinstance(value, str):
                try:
                    value = self.prepare_field_value(name, field, value, value_is_complex=False)
                except ValueError:  # as the environment's source says it (load_settings: one line)
                    raise SettingsError(f'error parsing value for field "{name}" from source "Nacos"') from None
            values[name] = value
        return values


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# "a, b,c" -> ["a", "b", "c"]; NoDecode: the environment's value is the list itself, not JSON.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
