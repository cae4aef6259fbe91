"""OpenAPI 3.1 at /openapi.json; Swagger UI (/docs) and ReDoc (/redoc) served from the installed packages.

The checks on the document are rules every operation keeps, read from the document and the app's
routes, so that a resource added the README's way is checked without listing it here. That every
route served is documented: tests/test_security.py::TestInventory.
"""

import re

import pytest
from openapi_spec_validator import validate

BEARER = [{"bearerAuth": []}]
ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def spec(app):
    return app.test_client().get("/openapi.json").get_json()


def operations(spec):
    return {(method, path): operation for path, item in spec["paths"].items() for method, operation in item.items()}


def test_spec_is_openapi_3_1_with_a_bearer_scheme(spec):
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_the_document_is_valid_openapi(spec):
    validate(spec)  # raises, naming the first fault


def test_each_operation_documents_a_summary_and_its_errors(spec):
    faults = []
    for (method, path), operation in operations(spec).items():
        responses = operation["responses"]
        errors = {status: response for status, response in responses.items() if status >= "400"}
        body = operation.get("requestBody")
        takes_input = operation.get("parameters") or body
        if not operation.get("summary"):
            faults.append((method, path, "no summary (the view's docstring)"))
        if any(response["content"]["application/json"]["schema"] != ERROR_SCHEMA for response in errors.values()):
            faults.append((method, path, "an error answer outside the ErrorResponse envelope"))
        if operation.get("security") == BEARER and "401" not in errors:
            faults.append((method, path, "needs a token but does not document 401"))
        if takes_input and "422" not in errors:
            faults.append((method, path, "takes input but does not document 422"))
        if body and "$ref" not in body["content"]["application/json"]["schema"]:
            faults.append((method, path, "a request body that is not a named schema"))
    assert not faults


def test_the_documented_security_is_what_each_operation_asks_for(client, spec):
    """An operation documented with the bearer scheme refuses a call without a token (before it looks
    at the body); every other operation lets one through."""
    wrong = []
    for (method, path), operation in operations(spec).items():
        url = path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                value = "1" if parameter["schema"].get("type") == "integer" else "x"
                url = url.replace("{" + parameter["name"] + "}", value)
        refused = getattr(client, method)(url).status_code == 401
        if refused != (operation.get("security") == BEARER):
            wrong.append((method, path))
    assert not wrong


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
