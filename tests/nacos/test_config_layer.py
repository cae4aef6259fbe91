"""Configuration from Nacos as a layer of the settings: names, formats, keys, precedence, refusals."""

from __future__ import annotations

import logging

import pytest

from app import config as app_config_module
from app.config import load_settings
from app.nacos import config
from app.nacos import config_layer as layer_module
from app.nacos.config_layer import (
    ConfigRejected,
    NacosLayer,
    build_layer,
    config_keys,
    setting_sources,
    settings_with_layer,
    warn_shadowed,
)
from app.nacos.config_types import ConfigContent, ConfigKey
from app.nacos.settings import NacosSettings
from app.settings_group import ConfigError

GROUP = "DEFAULT_GROUP"


def content(data_id: str, text: str | None, *, type: str | None = None, group: str = GROUP) -> ConfigContent:
    return ConfigContent(key=ConfigKey(data_id, group), content=text, md5="" if text is None else "m", type=type,
                         last_modified=None)  # fmt: skip


def layer_of(data_id: str, text: str, **kwargs) -> NacosLayer:
    return build_layer([content(data_id, text, **kwargs)])


# -- which configs -------------------------------------------------------------------------------


def test_config_names_follow_spring_cloud_alibaba():
    settings = NacosSettings(_env_file=None)
    assert [str(key) for key in config_keys(settings, profile="production")] == [
        "flask-api@DEFAULT_GROUP",
        "flask-api.yaml@DEFAULT_GROUP",
        "flask-api-production.yaml@DEFAULT_GROUP",
    ]


def test_shared_configs_come_first_in_their_groups_and_the_names_follow_the_settings():
    settings = NacosSettings(
        _env_file=None,
        NACOS_CONFIG_SHARED="common.yaml, db.properties@INFRA",
        NACOS_SERVICE_NAME="orders",
        NACOS_GROUP="SHOP",
        NACOS_CONFIG_FILE_EXTENSION="properties",
    )
    assert [str(key) for key in config_keys(settings, profile="development")] == [
        "common.yaml@SHOP",
        "db.properties@INFRA",
        "orders@SHOP",
        "orders.properties@SHOP",
        "orders-development.properties@SHOP",
    ]
    settings = NacosSettings(_env_file=None, NACOS_CONFIG_PREFIX="api", NACOS_CONFIG_GROUP="CONFIG")
    assert config_keys(settings, profile="testing")[-1] == ConfigKey("api-testing.yaml", "CONFIG")


# -- formats and keys ----------------------------------------------------------------------------

FORMATS = {
    "yaml": "log:\n  level: debug\nfeature:\n  new_checkout: true\n",
    "properties": "# a comment\nlog.level = debug\nfeature.new_checkout=true\n",
    "json": '{"log": {"level": "debug"}, "feature": {"new_checkout": true}}',
}


@pytest.mark.parametrize("kind", FORMATS)
def test_each_format_by_its_type_or_its_extension(kind):
    by_type = layer_of("flask-api", FORMATS[kind], type=kind)
    by_extension = layer_of(f"flask-api.{kind}", FORMATS[kind], type="text")  # Nacos's type when none was chosen
    for layer in (by_type, by_extension):
        assert layer.settings == {"LOG_LEVEL": "debug"}
        assert layer.app_values["feature.new_checkout"] in (True, "true")  # properties hold strings


def test_a_config_without_type_or_extension_reads_as_the_configured_extension():
    assert build_layer([content("flask-api", "log.level=ERROR")], default_format="properties").settings == {
        "LOG_LEVEL": "ERROR"
    }
    assert layer_of("flask-api", "LOG_LEVEL: ERROR").settings == {"LOG_LEVEL": "ERROR"}


def test_keys_name_settings_in_any_case_and_maps_flatten_with_underscores():
    layer = layer_of(
        "flask-api.yaml",
        "log_level: WARNING\ncors:\n  origins: https://a.example.com\nRate_Limit: {login: 5 per minute}\n"
        "nacos:\n  metadata: {zone: a, version: '2'}\n",
    )
    assert layer.settings == {
        "LOG_LEVEL": "WARNING",
        "CORS_ORIGINS": "https://a.example.com",
        "RATE_LIMIT_LOGIN": "5 per minute",
        "NACOS_METADATA": {"zone": "a", "version": "2"},  # a map setting stays whole
    }
    assert layer.app_values == {}


def test_later_configs_win_and_each_setting_knows_its_config():
    layer = build_layer(
        [
            content("common.yaml", "LOG_LEVEL: ERROR\nLOG_SQL: true\nshop: {currency: EUR, country: FR}"),
            content("flask-api", None),  # absent: normal
            content("flask-api.yaml", "LOG_LEVEL: DEBUG\nshop: {country: DE}"),
        ]
    )
    assert layer.settings == {"LOG_LEVEL": "DEBUG", "LOG_SQL": True}
    assert layer.sources == {
        "LOG_LEVEL": ConfigKey("flask-api.yaml", GROUP),
        "LOG_SQL": ConfigKey("common.yaml", GROUP),
    }
    assert layer.app_values == {"shop.currency": "EUR", "shop.country": "DE"}
    assert len(layer.contents) == 3


def test_an_empty_config_holds_nothing():
    assert layer_of("flask-api.yaml", "") == NacosLayer(contents=(content("flask-api.yaml", ""),))


# -- refused contents ----------------------------------------------------------------------------

SECRET = "s3cr3t-value-that-must-not-leak"


@pytest.mark.parametrize(
    ("data_id", "text", "type", "words"),
    [
        ("flask-api.yaml", f"JWT_SECRET_KEY: {SECRET}\n  bad: [", None, "not valid YAML"),
        ("flask-api.json", f'{{"JWT_SECRET_KEY": "{SECRET}",', None, "not valid JSON"),
        ("flask-api.properties", f"a={SECRET}\na.b={SECRET}", None, "has a value and keys under it"),
        ("flask-api.yaml", f"- {SECRET}", None, "is not a map"),
        ("flask-api", f"<a>{SECRET}</a>", "xml", "is not one of yaml, properties, json"),
    ],
)
def test_a_content_that_does_not_parse_is_refused_naming_the_config_not_the_value(data_id, text, type, words):
    with pytest.raises(ConfigRejected) as refused:
        layer_of(data_id, text, type=type)
    assert refused.value.key == ConfigKey(data_id, GROUP)
    assert str(refused.value).startswith(f"{data_id}@{GROUP}: ")
    assert words in str(refused.value)
    assert SECRET not in str(refused.value)


# -- precedence: the environment, Nacos, .env, the defaults --------------------------------------


@pytest.fixture
def dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("LOG_LEVEL=WARNING\nLOG_SQL=true\nNACOS_SERVICE_NAME=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(app_config_module.ENV_FILE_VARIABLE)  # the test suite runs with ENV_FILE empty: no file


def test_the_environment_wins_over_nacos_which_wins_over_dotenv_and_the_defaults(dotenv, monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "console")
    layer = layer_of("flask-api.yaml", "LOG_FORMAT: json\nLOG_LEVEL: ERROR\nDATABASE_POOL_SIZE: 7")
    settings = settings_with_layer(layer)
    assert settings.logging.LOG_FORMAT == "console"  # environment over Nacos
    assert settings.logging.LOG_LEVEL == "ERROR"  # Nacos over .env
    assert settings.database.DATABASE_POOL_SIZE == 7  # Nacos over the default
    assert settings.logging.LOG_SQL is True  # .env over the default
    sources = setting_sources(settings, layer)
    assert (sources["LOG_FORMAT"], sources["LOG_LEVEL"], sources["DATABASE_POOL_SIZE"]) == (
        "environment",
        "flask-api.yaml@DEFAULT_GROUP",
        "flask-api.yaml@DEFAULT_GROUP",
    )
    assert (sources["LOG_SQL"], sources["NACOS_SERVICE_NAME"], sources["PORT"]) == (".env", ".env", "default")
    assert set(sources) == app_config_module.SETTING_NAMES


def test_without_nacos_the_settings_are_as_before(dotenv):
    assert load_settings(nacos=None).logging.LOG_LEVEL == load_settings().logging.LOG_LEVEL == "WARNING"


def test_a_nacos_value_for_a_structured_setting_reads_as_in_the_environment():
    layer = layer_of("flask-api.properties", 'NACOS_METADATA={"zone": "b"}\nCORS_ORIGINS=https://a.example.com, *')
    settings = settings_with_layer(layer)
    assert settings.nacos.NACOS_METADATA == {"zone": "b"}
    assert settings.web.CORS_ORIGINS == ["https://a.example.com", "*"]


def test_a_structured_value_that_is_not_json_stops_the_start_in_one_line():
    layer = layer_of("flask-api.properties", "NACOS_METADATA={zone")
    with pytest.raises(ConfigError, match='NACOS_METADATA" from source "Nacos"'):
        settings_with_layer(layer)


def test_a_refused_nacos_value_names_its_config(monkeypatch):
    layer = layer_of("flask-api.yaml", "log: {level: verbose}")
    with pytest.raises(ConfigError) as refused:
        settings_with_layer(layer)
    assert str(refused.value).startswith("Configuration error: LOG_LEVEL (from flask-api.yaml@DEFAULT_GROUP): ")
    monkeypatch.setenv("LOG_LEVEL", "INFO")  # the environment shadows the bad value: nothing to refuse
    assert settings_with_layer(layer).logging.LOG_LEVEL == "INFO"


def test_values_the_environment_shadows_are_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(layer_module, "_warned_shadowed", set())
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    layer = layer_of("flask-api.yaml", "LOG_LEVEL: DEBUG\nLOG_SQL: true")
    with caplog.at_level(logging.WARNING):
        assert warn_shadowed(layer) == ["LOG_LEVEL"]
        assert warn_shadowed(layer) == ["LOG_LEVEL"]
    logged = [r.getMessage() for r in caplog.records if "environment overrides" in r.getMessage()]
    assert len(logged) == 1
    assert "LOG_LEVEL" in logged[0] and "flask-api.yaml@DEFAULT_GROUP" in logged[0] and "DEBUG" not in logged[0]


# -- the application's own keys ------------------------------------------------------------------


@pytest.fixture
def own_config():
    config.reset()
    yield config
    config.reset()


def test_the_applications_own_keys_read_with_a_default_in_its_type(own_config):
    assert own_config.value("feature.new_checkout", default=False) is False
    own_config.replace(layer_of("flask-api.properties", "feature.new_checkout=true\nshop.limit=5").app_values)
    assert own_config.value("feature.new_checkout", default=False) is True
    assert own_config.value("shop.limit", default=1) == 5
    assert own_config.value("shop.limit") == "5"
    assert own_config.value("feature.new_checkout", default=3) == 3  # not a number: the default


def test_a_change_calls_the_keys_callbacks_with_old_and_new(own_config, caplog):
    seen = []
    own_config.on_change("feature.x", lambda old, new: seen.append((old, new)))
    own_config.on_change("feature.x", lambda old, new: 1 / 0)  # a failing callback stops no other
    assert own_config.replace({"feature.x": 1, "other": "a"}) == {"feature.x", "other"}
    assert own_config.replace({"feature.x": 1, "other": "b"}) == {"other"}
    assert own_config.replace({}) == {"feature.x", "other"}
    assert seen == [(None, 1), (1, None)]
    assert any("callback failed" in r.getMessage() for r in caplog.records)
