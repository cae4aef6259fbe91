"""Settings: the seed's names and URLs, validation, and refusing unsafe production starts."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import app.config as config
from app import create_app
from app.config import ConfigError, load_settings, normalise_database_url
from tests.helpers import SECRET, STRONG_JWT_SECRET, production_settings, settings_for_tests
from tests.processes import coverage_variables, free_port, gunicorn, service_environment, serving

ROOT = Path(__file__).resolve().parents[1]
GOOD_SECRET = "Vh3-kQ9_xT7pLm2wRz5nB8cYd4fGs6jA"
GOOD_JWT_SECRET = "n7Kq-2WxP9vLc4Rb8Ty3Mz6Hs1Jd5Fg0E"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///app.db", "sqlite:///app.db"),
        ("postgresql://user:pass@localhost/dbname", "postgresql+psycopg://user:pass@localhost/dbname"),
        ("postgres://user:pass@localhost/dbname", "postgresql+psycopg://user:pass@localhost/dbname"),
        ("mysql://user:pass@localhost/dbname", "mysql+pymysql://user:pass@localhost/dbname?charset=utf8mb4"),
        ("mysql://u@h/d?ssl=true", "mysql+pymysql://u@h/d?ssl=true&charset=utf8mb4"),
        ("mysql://u@h/d?charset=latin1", "mysql+pymysql://u@h/d?charset=latin1"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_seed_database_urls_use_the_bundled_drivers(given, expected):
    assert normalise_database_url(given) == expected


def production(*, workers: int = 1, **overrides):
    values = {"FLASK_ENV": "production", "SECRET_KEY": GOOD_SECRET, "JWT_SECRET_KEY": GOOD_JWT_SECRET, **overrides}
    return config.refuse_unsafe(load_settings(values), workers=workers)


def test_production_starts_with_sound_settings():
    production()


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY is not set"),
        ({"JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY is not set"),
        ({"SECRET_KEY": "your-secret-key-here"}, "SECRET_KEY is a well-known placeholder"),
        ({"JWT_SECRET_KEY": "jwt-secret-key"}, "JWT_SECRET_KEY is a well-known placeholder"),
        ({"SECRET_KEY": "k" * 31}, "SECRET_KEY is shorter than 32 bytes"),
        ({"SECRET_KEY": "a" * 32}, "SECRET_KEY is a repeated pattern"),
        ({"JWT_SECRET_KEY": "changeme" * 4}, "JWT_SECRET_KEY contains a well-known placeholder"),
        ({"SECRET_KEY": "your-secret-key-here-0123456789ab"}, "SECRET_KEY contains a well-known placeholder"),
        ({"SECRET_KEY": "Ab1" * 11}, "SECRET_KEY is a repeated pattern"),
        ({"SECRET_KEY": "abababababababababcdcdcdcdcdcdcdcd"}, "fewer than 10 different characters"),
        ({"JWT_SECRET_KEY": GOOD_SECRET}, "SECRET_KEY and JWT_SECRET_KEY must differ"),
        ({"FLASK_DEBUG": True}, "FLASK_DEBUG (flask run --debug) must be off"),
        ({"CORS_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": True}, "CORS_ORIGINS=*"),
        ({"DEBUG": True}, "DEBUG must be off"),
        ({"ARGON2_MEMORY_COST": 8192}, "OWASP"),
    ],
)
def test_production_refuses_unsafe_settings(overrides, words):
    with pytest.raises(ConfigError) as raised:
        production(**overrides)
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_refused_secrets_say_how_to_generate_one(name):
    with pytest.raises(ConfigError) as raised:
        production(**{name: "short"})
    assert "python -c 'import secrets; print(secrets.token_urlsafe(48))'" in str(raised.value)


@pytest.mark.parametrize(
    "secret",
    [
        "0123456789abcdef" * 2 + "f",  # hex digits once each, then again: a pattern, but not a repeat
        "3f9a1c0b7e2d48a6b5c1f0e9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9",  # openssl rand -hex 32
        "oJ3mX1-7qkNwQ0yq_fZ2PvUe8ZLm4S5uRk3WbYtV9xHc1nDgA6sEaI2oLp7rTj",  # secrets.token_urlsafe(48)
    ],
)
def test_random_looking_secrets_are_accepted(secret):
    production(SECRET_KEY=secret)


def test_production_with_several_workers_needs_shared_limit_counts():
    production(workers=1)
    with pytest.raises(ConfigError) as raised:
        production(workers=5)
    assert "REDIS_URL" in str(raised.value) and "RATE_LIMIT_ALLOW_MEMORY" in str(raised.value)
    assert "\n" not in str(raised.value)
    production(workers=5, REDIS_URL="redis://127.0.0.1:6379/0")
    production(workers=5, RATE_LIMIT_ALLOW_MEMORY=True)
    production(workers=5, RATE_LIMIT_ENABLED=False)


@pytest.mark.parametrize("level", ["debug", "Info", " WARNING "])
def test_log_level_in_any_case(monkeypatch, level):
    monkeypatch.setenv("LOG_LEVEL", level)
    assert level.strip().upper() == load_settings({}).logging.LOG_LEVEL


def test_development_warns_once_and_starts(monkeypatch, database_url, caplog):
    monkeypatch.setattr(config, "_warned", set())
    for _ in range(2):
        create_app(settings_for_tests(database_url, FLASK_ENV="development", SECRET_KEY="your-secret-key-here"))
    warnings = [str(r.msg) for r in caplog.records if "insecure setting" in str(r.msg)]
    assert sum("SECRET_KEY is a well-known placeholder" in w for w in warnings) == 1


@pytest.fixture
def no_random_keys_yet(monkeypatch):
    monkeypatch.setattr(config, "_warned", set())
    config._random_key.cache_clear()
    yield
    config._random_key.cache_clear()


def test_unset_secret_in_development_is_random_per_process_and_said(no_random_keys_yet, caplog):
    settings = load_settings({"FLASK_ENV": "development", "SECRET_KEY": SECRET, "JWT_SECRET_KEY": None})
    for _ in range(2):
        config.refuse_unsafe(settings)  # what every start does
    first = settings.secret("JWT_SECRET_KEY")
    assert first == settings.secret("JWT_SECRET_KEY") and len(first) >= 32
    assert sum("random key" in str(r.msg) for r in caplog.records) == 1


def test_random_keys_are_made_once_when_the_settings_are_loaded(no_random_keys_yet):
    first = load_settings({"FLASK_ENV": "development", "SECRET_KEY": SECRET, "JWT_SECRET_KEY": None})
    again = load_settings({"FLASK_ENV": "testing", "SECRET_KEY": SECRET, "JWT_SECRET_KEY": None})
    assert first.secret("JWT_SECRET_KEY") == again.secret("JWT_SECRET_KEY")  # every app of the process
    assert first.secret("SECRET_KEY") == SECRET != first.secret("JWT_SECRET_KEY")
    assert first.random_keys == again.random_keys == ("JWT_SECRET_KEY",)
    assert config._random_key.cache_info().misses == 1


def test_production_makes_up_no_key(no_random_keys_yet):
    settings = load_settings({"FLASK_ENV": "production", "SECRET_KEY": GOOD_SECRET, "JWT_SECRET_KEY": None})
    assert settings.random_keys == () and config._random_key.cache_info().misses == 0
    assert settings.secret("SECRET_KEY") == GOOD_SECRET
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY is not set"):
        settings.secret("JWT_SECRET_KEY")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NACOS_SERVICE_PORT", "abc"),
        ("NACOS_SERVICE_PORT", "70000"),
        ("NACOS_SERVER_ADDR", "localhost"),
        ("NACOS_SERVER_ADDR", "127.0.0.1:8848,,nohost"),
        ("NACOS_SERVICE_IP", "300.1.1.1"),
        ("NACOS_HEARTBEAT_INTERVAL", "0"),
        ("NACOS_API", "v2"),
        ("NACOS_METADATA", "{not json"),
        ("NACOS_GROUP", "A@@B"),
        ("FLASK_ENV", "staging"),
        ("JWT_ACCESS_TOKEN_MINUTES", "60"),
    ],
)
def test_invalid_values_stop_the_start_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings({})
    assert variable in str(raised.value)


def test_nacos_settings_have_the_seed_defaults():
    settings = load_settings({}).nacos
    assert settings.NACOS_SERVER_ADDR == ["127.0.0.1:8848"]
    assert (settings.NACOS_NAMESPACE, settings.NACOS_GROUP, settings.NACOS_SERVICE_NAME) == (
        "public",
        "DEFAULT_GROUP",
        "flask-api",
    )
    assert (settings.NACOS_SERVICE_PORT, settings.NACOS_HEARTBEAT_INTERVAL, settings.NACOS_DEREGISTER_TIME) == (
        5000,
        5,
        10,
    )


def test_nacos_cluster_list_and_metadata_are_parsed(monkeypatch):
    monkeypatch.setenv("NACOS_SERVER_ADDR", "10.0.0.1:8848, http://nacos-2:8848")
    monkeypatch.setenv("NACOS_METADATA", '{"zone": "a"}')
    settings = load_settings({}).nacos
    assert settings.NACOS_SERVER_ADDR == ["10.0.0.1:8848", "http://nacos-2:8848"]
    assert settings.NACOS_METADATA == {"zone": "a"}


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("NACOS_SERVICE_NAME=from-dotenv\nLOG_LEVEL=DEBUG\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_FILE_VARIABLE)  # the test suite runs with ENV_FILE empty: no file
    settings = load_settings()
    assert (settings.nacos.NACOS_SERVICE_NAME, settings.logging.LOG_LEVEL) == ("from-dotenv", "DEBUG")


def test_env_file_names_another_file_and_empty_reads_none(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("NACOS_SERVICE_NAME=from-dotenv\n")
    (tmp_path / "other.env").write_text("NACOS_SERVICE_NAME=from-other\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(config.ENV_FILE_VARIABLE, "other.env")
    assert load_settings().nacos.NACOS_SERVICE_NAME == "from-other"
    monkeypatch.setenv(config.ENV_FILE_VARIABLE, "")
    assert load_settings().nacos.NACOS_SERVICE_NAME == "flask-api"


def test_config_env_example_is_valid(monkeypatch):
    for line in (ROOT / "config.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    settings = load_settings({})
    assert settings.app.FLASK_ENV == "development" and settings.database.DATABASE_URL == "sqlite:///app.db"


def test_refused_start_prints_one_line_and_exits_1(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from app import create_app; create_app()"],
        cwd=tmp_path,
        env={
            **coverage_variables(os.environ),
            "PYTHONPATH": str(ROOT),
            "FLASK_ENV": "production",
            "SECRET_KEY": "your-secret-key-here",
            "JWT_SECRET_KEY": GOOD_JWT_SECRET,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Configuration error: SECRET_KEY is a well-known placeholder "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
    ]


@pytest.mark.parametrize("origins", ["app.example.com", "https://app.example.com/path", "https://a.example;x"])
def test_cors_origins_must_be_origins(origins):
    with pytest.raises(ConfigError) as raised:
        load_settings({"CORS_ORIGINS": origins})
    assert "CORS_ORIGINS" in str(raised.value)


def test_cors_default_is_any_origin_outside_production_only():
    assert load_settings({"FLASK_ENV": "development"}).cors_origins == ["*"]
    assert load_settings({"FLASK_ENV": "production"}).cors_origins == []
    assert load_settings({"FLASK_ENV": "production", "CORS_ORIGINS": "https://a.example"}).cors_origins == [
        "https://a.example"
    ]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite://app.db", "sqlite:///app.db (three slashes"),
        ("foo://bar", "unknown database type 'foo'"),
        ("postgresql://user:hunter2@host:port/name", "is not a database URL"),
    ],
)
def test_unusable_database_urls_are_one_line_without_the_password(url, words):
    with pytest.raises(ConfigError) as raised:
        load_settings({"DATABASE_URL": url})
    message = str(raised.value)
    assert message.startswith("Configuration error: DATABASE_URL: ") and words in message
    assert "\n" not in message and "hunter2" not in message


def test_gunicorn_refuses_several_workers_counting_limits_apart(tmp_path):
    env = service_environment(tmp_path, FLASK_ENV="production", NACOS_ENABLED="false")
    refused = subprocess.run(
        gunicorn(free_port(), workers=2), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith("Configuration error: REDIS_URL is not set, so each of the 2 workers")

    port = free_port()
    with serving(gunicorn(port, workers=2), {**env, "RATE_LIMIT_ALLOW_MEMORY": "true"}, port):
        pass


def test_an_empty_value_is_unset_wherever_it_comes_from(tmp_path, monkeypatch):
    """`NAME=` in `.env`, `${NAME:-}` in compose, or "" given to create_app: the default, never ""."""
    (tmp_path / ".env").write_text("NACOS_SERVICE_IP=\nLOG_FORMAT=\nWEB_CONCURRENCY=\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_FILE_VARIABLE)
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("NACOS_USERNAME", "")
    settings = load_settings()
    assert settings.nacos.NACOS_SERVICE_IP is None and settings.logging.LOG_FORMAT is None
    assert settings.server.WEB_CONCURRENCY is None and settings.limits.REDIS_URL is None
    assert settings.nacos.NACOS_USERNAME is None
    assert load_settings({"METRICS_TOKEN": "", "PASSWORD_REJECT_COMMON": ""}).metrics.METRICS_TOKEN is None


def test_one_flat_set_of_values_fills_every_group():
    settings = load_settings({"LOG_SQL": True, "NACOS_GROUP": "G", "PORT": 8000, "NO_SUCH_SETTING": "ignored"})
    assert (settings.logging.LOG_SQL, settings.nacos.NACOS_GROUP, settings.server.PORT) == (True, "G", 8000)
    assert {"LOG_SQL", "NACOS_GROUP", "PORT", "SECRET_KEY", "REDIS_URL"} <= config.SETTING_NAMES
    assert sum(len(group.model_fields) for group in config.GROUPS.values()) == len(config.SETTING_NAMES)


def test_comma_lists_are_read_alike():
    settings = load_settings(
        {"CORS_ORIGINS": " https://a.example/, ,https://b.example", "NACOS_SERVER_ADDR": "a:1, b:2,"}
    )
    assert settings.web.CORS_ORIGINS == ["https://a.example", "https://b.example"]
    assert settings.nacos.NACOS_SERVER_ADDR == ["a:1", "b:2"]
    with pytest.raises(ConfigError, match=r"^Configuration error: NACOS_SERVER_ADDR: at least one host:port"):
        load_settings({"NACOS_SERVER_ADDR": " , "})


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


# Layering Nacos's configuration into the settings needs them all: that one module is the package's way
# to them (settings_with_layer, setting_sources), so that the rest keeps to its own.
SETTINGS_LAYER_MODULE = "config_layer.py"


def test_the_nacos_package_reads_its_own_settings_only():
    for path in (ROOT / "app" / "nacos").glob("*.py"):
        if path.name != SETTINGS_LAYER_MODULE:
            assert "app.config" not in _imported_modules(path), path.name
    assert "app.config" not in _imported_modules(ROOT / "app" / "nacos" / "settings.py")


def test_shared_objects_are_reached_through_typed_accessors():
    keyed = re.compile(r"""extensions(\[|\.get\()["'](settings|passwords|redis|discovery|version)["']""")
    for path in [
        *(ROOT / "app").rglob("*.py"),
        ROOT / "run.py",
        ROOT / "gunicorn.conf.py",
        *(ROOT / "tests").rglob("*.py"),
    ]:
        assert not keyed.search(path.read_text()), path.relative_to(ROOT)


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("your-secret-key-here", "is a well-known placeholder"),
        ("jwt-secret-key", "is a well-known placeholder"),
        ("ChangeMe", "is a well-known placeholder"),
        ("Zq8#pL2v" * 3 + "Zq8#pL2", "is shorter than 32 bytes"),
    ],
)
def test_the_app_refuses_unsafe_secrets_in_production_in_one_line(database_url, name, value, problem):
    with pytest.raises(ConfigError) as refused:
        create_app(production_settings(database_url, **{name: value}))
    message = str(refused.value)
    assert message.startswith(f"Configuration error: {name} {problem} (generate one with: python -c ")
    assert "\n" not in message
    assert not value or value not in message


def test_the_app_refuses_debug_in_production(database_url):
    with pytest.raises(ConfigError) as refused:
        create_app(production_settings(database_url, DEBUG=True))
    assert str(refused.value) == "Configuration error: DEBUG must be off in production"


def test_the_app_starts_in_production_with_strong_secrets(database_url):
    started = create_app(production_settings(database_url))
    assert started.config["JWT_SECRET_KEY"] == STRONG_JWT_SECRET and started.config["DEBUG"] is False


def test_elsewhere_an_unset_key_becomes_a_random_one(app_with):
    development = app_with(FLASK_ENV="development", SECRET_KEY=None, JWT_SECRET_KEY=None)
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        key = development.config[name]
        assert len(key) >= 32 and key.lower() not in config.PLACEHOLDER_SECRETS
    assert development.config["SECRET_KEY"] != development.config["JWT_SECRET_KEY"]
