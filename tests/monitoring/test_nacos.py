"""/monitoring/nacos through HTTP, with a registrar running against the fake server (tests/conftest.py)."""

import time
from urllib.parse import quote

from app import create_app
from app.models import Role
from app.nacos.config_types import ConfigContent, ConfigKey
from app.nacos.state import RUNTIME_DIR_VARIABLE, publish_config_state
from tests.helpers import assert_error, bearer, login, production_settings, settings_for_tests
from tests.nacos.helpers import make_client, make_registration, wait_for


def test_service_status_without_a_registrar(nacos_client):
    body = nacos_client.get("/monitoring/nacos/service").get_json()
    assert (body["registrar"], body["registered"], body["service_name"]) == ("not running", False, "flask-api")


def test_service_status_with_a_registrar(nacos_client, registrar, nacos):
    wait_for(lambda: nacos_client.get("/monitoring/nacos/service").get_json()["last_heartbeat_result"] == "ok")
    body = nacos_client.get("/monitoring/nacos/service").get_json()

    assert body["registered"] is True and body["registrar"] == "running"
    assert (body["namespace"], body["group"], body["cluster"]) == ("public", "DEFAULT_GROUP", "DEFAULT")
    assert (body["ip"], body["port"]) == ("127.0.0.1", 5000)
    assert body["server"] == f"http://{nacos.address}" and body["api"] == "v1"
    assert body["metadata"]["preserved.heart.beat.interval"] == "300"
    assert body["consecutive_failures"] == 0 and body["last_heartbeat_at"]


def test_manual_control_needs_an_admin(nacos_client, registrar, make_user):
    make_user("alice")
    user = bearer(login(nacos_client, "alice")["access_token"])
    for action in ("register", "deregister"):
        assert_error(nacos_client.post(f"/monitoring/nacos/service/{action}"), 401, "unauthorized")
        assert_error(nacos_client.post(f"/monitoring/nacos/service/{action}", headers=user), 403, "forbidden")


def test_manual_deregister_and_register_are_idempotent(nacos_client, registrar, nacos, admin_headers_for):
    headers = admin_headers_for(nacos_client)
    for _ in range(2):
        response = nacos_client.post("/monitoring/nacos/service/deregister", headers=headers)
        assert response.status_code == 200 and response.get_json()["registered"] is False
        assert nacos.hosts("flask-api") == []
    for _ in range(2):
        response = nacos_client.post("/monitoring/nacos/service/register", headers=headers)
        assert response.status_code == 200 and response.get_json()["registered"] is True
        assert len(nacos.hosts("flask-api")) == 1


def test_manual_control_without_a_registrar_is_503(nacos_client, admin_headers_for):
    response = nacos_client.post("/monitoring/nacos/service/register", headers=admin_headers_for(nacos_client))
    assert_error(response, 503, "service_unavailable")


def test_instances_of_another_service(nacos_client, nacos):
    client = make_client(nacos.address)
    client.register(make_registration(service_name="user-service", port=1))
    client.register(make_registration(service_name="user-service", port=2))
    nacos.instances[next(k for k in nacos.instances if k[-1] == 2)].healthy = False

    healthy = nacos_client.get("/monitoring/nacos/service/user-service/instances").get_json()
    everyone = nacos_client.get("/monitoring/nacos/service/user-service/instances?healthy=false").get_json()

    assert healthy["service_name"] == "user-service" and [i["port"] for i in healthy["instances"]] == [1]
    assert sorted(i["port"] for i in everyone["instances"]) == [1, 2]
    assert nacos_client.get("/monitoring/nacos/service/nobody/instances").get_json()["instances"] == []


def test_instances_when_nacos_is_down_and_nothing_is_cached(nacos_client, nacos):
    nacos.stop()
    response = nacos_client.get("/monitoring/nacos/service/user-service/instances")
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]


def test_disabled_nacos(app_with, admin_headers_for):
    client = app_with(NACOS_ENABLED=False).test_client()
    assert client.get("/monitoring/nacos/service").get_json()["enabled"] is False
    assert_error(client.get("/monitoring/nacos/service/x/instances"), 503, "service_unavailable")
    for action in ("register", "deregister"):
        response = client.post(f"/monitoring/nacos/service/{action}", headers=admin_headers_for(client))
        assert_error(response, 503, "service_unavailable")


def test_a_demoted_admin_loses_admin_rights_at_once(client, make_user, admin_headers):
    make_user("deputy", role=Role.ADMIN)
    deputy_headers = bearer(login(client, "deputy")["access_token"])
    deputy = client.get("/api/v1/users/me", headers=deputy_headers).get_json()["id"]
    assert client.put(f"/api/v1/users/{deputy}", json={"role": "user"}, headers=admin_headers).status_code == 200

    response = client.post("/monitoring/nacos/service/register", headers=deputy_headers)
    assert_error(response, 403, "forbidden")


def test_a_service_name_reaches_nacos_as_one_parameter(nacos_client, nacos):
    name = "svc&namespaceId=private&groupName=ADMIN_GROUP#x?y=1"
    response = nacos_client.get(f"/monitoring/nacos/service/{quote(name, safe='')}/instances")

    assert response.status_code == 200 and response.get_json()["instances"] == []
    sent = nacos.requests_to("GET", "/instance/list")[-1].query
    assert (sent["serviceName"], sent["namespaceId"], sent["groupName"]) == (name, "public", "DEFAULT_GROUP")


def test_a_service_name_cannot_choose_its_group(nacos_client, nacos):
    response = nacos_client.get(f"/monitoring/nacos/service/{quote('OTHER_GROUP@@svc')}/instances")
    assert_error(response, 422, "validation_error")
    assert nacos.requests_to("GET", "/instance/list") == []


def lookups_of(nacos, prefix: str) -> int:
    return len([r for r in nacos.requests_to("GET", "/instance/list") if r.params["serviceName"].startswith(prefix)])


def test_names_looked_up_here_are_not_kept_fresh(nacos_client, nacos):
    nacos.cache_millis = 100
    for n in range(10):
        assert nacos_client.get(f"/monitoring/nacos/service/looked-up-{n}/instances").status_code == 200

    time.sleep(2.5)  # the background refresher looks every second at lists gone stale

    assert lookups_of(nacos, "looked-up-") == 10


def test_lookups_are_limited_per_client(nacos, nacos_settings):
    client = create_app({**nacos_settings, "RATE_LIMIT_ENABLED": True, "RATE_LIMIT_NACOS_LOOKUP": "3 per minute"})
    client = client.test_client()
    for n in range(3):
        assert client.get(f"/monitoring/nacos/service/name-{n}/instances").status_code == 200

    response = client.get("/monitoring/nacos/service/name-3/instances")

    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert lookups_of(nacos, "name-") == 3
    other = client.get("/monitoring/nacos/service/name-3/instances", environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 200


def test_reading_needs_an_admin_in_production_only(nacos, database_url, make_user, admin_headers_for):
    nacos_on = {"NACOS_ENABLED": True, "NACOS_SERVER_ADDR": nacos.address}
    production = create_app(production_settings(database_url, **nacos_on)).test_client()
    make_user("alice")
    user = bearer(login(production, "alice")["access_token"])
    admin = admin_headers_for(production)
    for path in ("/monitoring/nacos/service", "/monitoring/nacos/service/user-service/instances"):
        assert_error(production.get(path), 401, "unauthorized")
        assert_error(production.get(path, headers=user), 403, "forbidden")
        assert production.get(path, headers=admin).status_code == 200

    development = create_app(settings_for_tests(database_url, FLASK_ENV="development", **nacos_on)).test_client()
    for path in ("/monitoring/nacos/service", "/monitoring/nacos/service/user-service/instances"):
        assert development.get(path).status_code == 200  # the seed's curl, as written


# -- /monitoring/nacos/config: the configuration read from Nacos ---------------------------------

CONFIG_SECRET = "Zq8-config-secret-that-stays-in-nacos"


def test_config_status_needs_an_admin(client, make_user):
    make_user("alice")
    assert_error(client.get("/monitoring/nacos/config"), 401, "unauthorized")
    user = bearer(login(client, "alice")["access_token"])
    assert_error(client.get("/monitoring/nacos/config", headers=user), 403, "forbidden")


def test_config_status_without_a_watcher(client, admin_headers):
    response = client.get("/monitoring/nacos/config", headers=admin_headers)
    body = response.get_json()
    assert response.status_code == 200
    assert (body["enabled"], body["watcher"], body["api"], body["version"]) == (False, "not running", None, None)
    assert (body["configs"], body["pending"], body["rejected"]) == ([], [], None)
    # Settings given to create_app (the tests') count as .env's.
    assert body["sources"]["LOG_FORMAT"] == ".env" and body["sources"]["LOG_LEVEL"] == "default"


def test_config_status_shows_the_watchers_state_names_only(app_with, admin_headers_for, tmp_path, monkeypatch):
    key = ConfigKey("flask-api.yaml", "DEFAULT_GROUP")
    contents = [
        ConfigContent(ConfigKey("flask-api", "DEFAULT_GROUP"), None, "", None, None, "absent"),
        ConfigContent(key, f"LOG_SQL: true\nJWT_SECRET_KEY: {CONFIG_SECRET}\n", "abc", "yaml", 1700000000.0),
    ]
    rejected = {"key": str(key), "setting": "LOG_LEVEL", "message": "Input should be 'DEBUG', ...", "at": 1.5}
    state = {"version": 3, "api": "v1", "contents": [c.to_json() for c in contents], "rejected": rejected,
             "pending": ["DATABASE_URL"], "updated_at": 2.5}  # fmt: skip
    publish_config_state(tmp_path, state)
    monkeypatch.setenv(RUNTIME_DIR_VARIABLE, str(tmp_path))
    client = app_with(NACOS_CONFIG_ENABLED=True).test_client()

    response = client.get("/monitoring/nacos/config", headers=admin_headers_for(client))
    body = response.get_json()
    assert response.status_code == 200 and CONFIG_SECRET not in response.get_data(as_text=True)
    assert (body["enabled"], body["watcher"], body["api"], body["version"]) == (True, "running", "v1", 3)
    assert body["configs"] == [
        {"data_id": "flask-api", "group": "DEFAULT_GROUP", "md5": "", "type": None, "origin": "absent",
         "last_modified": None},
        {"data_id": "flask-api.yaml", "group": "DEFAULT_GROUP", "md5": "abc", "type": "yaml", "origin": "server",
         "last_modified": 1700000000.0},
    ]  # fmt: skip
    assert body["sources"]["LOG_SQL"] == body["sources"]["JWT_SECRET_KEY"] == "flask-api.yaml@DEFAULT_GROUP"
    assert (body["pending"], body["rejected"], body["updated_at"]) == (["DATABASE_URL"], rejected, 2.5)
