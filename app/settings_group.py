"""What every group of settings shares: where the values come from, how a comma list is read, and
the error that stops a start.

A leaf module: app/config.py and the packages that own a group (app/nacos/settings.py) build on it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# "a, b,c" -> ["a", "b", "c"]; NoDecode: the environment's value is the list itself, not JSON.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
