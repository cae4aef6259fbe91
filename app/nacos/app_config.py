"""The application's own configuration in Nacos: the keys that name no setting.

    from app.nacos import config

    if config.value("feature.new_checkout", default=False):
        ...

    def checkout_switched(old, new):
        log.info("new checkout switched", enabled=new)

    config.on_change("feature.new_checkout", checkout_switched)

Keys are the dotted paths as written in Nacos (`feature: {new_checkout: true}` in YAML, or
`feature.new_checkout=true` in properties). A value is converted to the type of its default
(properties files hold strings: "true" is True for a bool default); one that does not convert
gives the default, with a warning. The values change while the service runs, when Nacos's do:
read them when needed rather than keeping them.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError

log = structlog.get_logger(__name__)

Callback = Callable[[Any, Any], None]  # callback(old, new); None for a key that was absent

_MISSING = object()
_lock = threading.Lock()
_values: dict[str, Any] = {}
_callbacks: dict[str, list[Callback]] = defaultdict(list)


def value(key: str, default: Any = None) -> Any:
    """The key's current value, converted to the default's type; the default when absent."""
    current = _values.get(key, _MISSING)
    if current is _MISSING:
        return default
    if default is None or isinstance(current, type(default)):
        return current
    try:
        return TypeAdapter(type(default)).validate_python(current)
    except ValidationError:
        log.warning(
            "a Nacos value is not of its default's type: using the default", key=key, type=type(default).__name__
        )
        return default


def values() -> dict[str, Any]:
    """All the application's own keys and their current values."""
    return dict(_values)


def on_change(key: str, callback: Callback) -> None:
    """Call callback(old, new) whenever the key's value changes (new is None once it is removed)."""
    with _lock:
        _callbacks[key].append(callback)


def replace(app_values: Mapping[str, Any]) -> set[str]:
    """Make `app_values` the current values (a new configuration); returns the keys that changed.

    The callbacks of the changed keys run after the values are in place; one that fails is logged
    and does not stop the others.
    """
    with _lock:
        old = dict(_values)
        _values.clear()
        _values.update(app_values)
        new = dict(_values)
        changed = {key for key in old.keys() | new.keys() if old.get(key, _MISSING) != new.get(key, _MISSING)}
        calls = [(key, callback) for key in sorted(changed) for callback in _callbacks.get(key, ())]
    for key, callback in calls:
        try:
            callback(old.get(key), new.get(key))
        except Exception:
            log.exception("a Nacos configuration callback failed", key=key)
    return changed


def reset() -> None:
    """No values and no callbacks (tests)."""
    with _lock:
        _values.clear()
        _callbacks.clear()
