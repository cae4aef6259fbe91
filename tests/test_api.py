"""The seed's usage walkthrough: every curl example of its "使用示例" sections, in order, with the answers
the README documents, against an app registered in a (fake) Nacos where a `user-service` also runs."""

import pytest

from tests.helpers import assert_error, bearer
from tests.nacos.helpers import make_client, make_registration

SEED_USER = {"username": "testuser", "email": "test@example.com", "password": "password123"}


@pytest.fixture
def client(nacos_client, registrar, nacos):
    """The service as the seed runs it: registered in Nacos, next to another service's instance."""
    make_client(nacos.address).register(make_registration(service_name="user-service", ip="10.0.0.7", port=8080))
    return nacos_client


def test_nacos_service_discovery_examples(client, admin_headers_for):
    # curl http://localhost:5000/monitoring/nacos/service
    service = client.get("/monitoring/nacos/service")
    assert service.status_code == 200
    body = service.get_json()
    assert (body["enabled"], body["registered"], body["registrar"]) == (True, True, "running")
    assert (body["service_name"], body["group"], body["namespace"]) == ("flask-api", "DEFAULT_GROUP", "public")

    # curl -X POST http://localhost:5000/monitoring/nacos/service/register: it changes the cluster, so
    # without a token it is refused (401), and with an admin's token it registers (idempotent).
    assert_error(client.post("/monitoring/nacos/service/register"), 401, "unauthorized")
    registered = client.post("/monitoring/nacos/service/register", headers=admin_headers_for(client))
    assert registered.status_code == 200 and registered.get_json()["registered"] is True

    # curl http://localhost:5000/monitoring/nacos/service/user-service/instances
    instances = client.get("/monitoring/nacos/service/user-service/instances")
    assert instances.status_code == 200
    body = instances.get_json()
    assert (body["service_name"], body["group"]) == ("user-service", "DEFAULT_GROUP")
    assert [(i["ip"], i["port"], i["healthy"]) for i in body["instances"]] == [("10.0.0.7", 8080, True)]


def test_usage_examples(client):
    # 1. 用户注册: curl -X POST http://localhost:5000/auth/register -d '{"username": "testuser", ...}'
    registered = client.post("/auth/register", json=SEED_USER)
    assert registered.status_code == 201
    user = registered.get_json()
    assert (user["username"], user["email"], user["role"], user["is_active"]) == (
        "testuser",
        "test@example.com",
        "user",
        True,
    )
    assert "password" not in registered.get_data(as_text=True)

    # 2. 用户登录: curl -X POST http://localhost:5000/auth/login -d '{"username": "testuser", "password": ...}'
    login = client.post("/auth/login", json={"username": "testuser", "password": "password123"})
    assert login.status_code == 200
    tokens = login.get_json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (tokens["token_type"], tokens["expires_in"]) == ("Bearer", 900)

    # 3. 获取用户列表: curl -X GET http://localhost:5000/api/v1/users -H "Authorization: Bearer YOUR_ACCESS_TOKEN"
    listed = client.get("/api/v1/users", headers=bearer(tokens["access_token"]))
    assert listed.status_code == 200
    page = listed.get_json()
    assert (page["page"], page["per_page"], page["total"], page["pages"]) == (1, 20, 1, 1)
    assert [item["username"] for item in page["items"]] == ["testuser"]
    assert_error(client.get("/api/v1/users"), 401, "unauthorized")  # the token is what lets it in

    # 4. 查看Nacos服务信息: curl http://localhost:5000/monitoring/nacos/service
    service = client.get("/monitoring/nacos/service").get_json()
    assert (service["service_name"], service["registered"]) == ("flask-api", True)
