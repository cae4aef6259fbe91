"""OpenAPI 3.1 at /openapi.json; Swagger UI (/docs) and ReDoc (/redoc) served from the installed packages."""

import re

import pytest

ENDPOINTS = {
    ("post", "/auth/register"): False,
    ("post", "/auth/login"): False,
    ("post", "/auth/refresh"): True,
    ("post", "/auth/logout"): True,
    ("get", "/api/v1/users"): True,
    ("get", "/api/v1/users/me"): True,
    ("get", "/api/v1/users/{user_id}"): True,
    ("put", "/api/v1/users/{user_id}"): True,
    ("delete", "/api/v1/users/{user_id}"): True,
    ("get", "/api/v1/health"): False,
    ("get", "/api/v1/health/live"): False,
    ("get", "/monitoring/metrics"): False,
    ("get", "/monitoring/nacos/service"): True,  # in production
    ("get", "/monitoring/nacos/service/{service_name}/instances"): True,  # in production
    ("post", "/monitoring/nacos/service/register"): True,
    ("post", "/monitoring/nacos/service/deregister"): True,
}
# Answers that cannot fail: they read only the process's own state.
NO_ERROR_STATUS = {"/api/v1/health/live"}


@pytest.fixture(scope="module")
def spec(app):
    return app.test_client().get("/openapi.json").get_json()


def test_spec_is_openapi_3_1_with_a_bearer_scheme(spec):
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_every_endpoint_is_documented(spec):
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert documented == set(ENDPOINTS)


@pytest.mark.parametrize(("method", "path"), sorted(ENDPOINTS))
def test_each_operation_documents_summary_security_and_errors(spec, method, path):
    operation = spec["paths"][path][method]
    assert operation["summary"]
    assert (operation.get("security") == [{"bearerAuth": []}]) is ENDPOINTS[(method, path)]
    errors = {status: response for status, response in operation["responses"].items() if status >= "400"}
    assert errors or path in NO_ERROR_STATUS, "no error status documented"
    for response in errors.values():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    if ENDPOINTS[(method, path)]:
        assert "401" in errors
    if method in ("post", "put") and not path.startswith(("/auth/refresh", "/auth/logout", "/monitoring")):
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert "422" in errors


@pytest.mark.parametrize("page", ["/docs", "/swagger", "/redoc"])
def test_ui_pages_load_their_assets_locally(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = re.sub(r"<!--.*?-->", "", response.get_data(as_text=True), flags=re.S)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:
        assert client.get("/" + asset.lstrip("/")).status_code == 200, asset
    assert "openapi.json" in html
