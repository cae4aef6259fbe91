"""OpenAPI 3.1 at /openapi.json; Swagger UI (/docs) and ReDoc (/redoc) served from the installed packages.

The checks on the document are rules every operation keeps, read from the document and the app's
routes, so that a resource added the README's way is checked without listing it here, and that
every route served is documented.
"""

import json
import re
import subprocess
import sys

import httpx
import pytest
from openapi_spec_validator import validate

from app import create_app
from tests.helpers import PASSWORD, production_settings, served_operations

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


def test_every_route_served_is_documented(app, spec):
    assert set(served_operations(app)) == set(operations(spec))


def test_the_document_is_valid_openapi(spec):
    validate(spec)  # raises, naming the first fault


def test_operation_ids_are_the_view_function_names(app, spec):
    """Plain, stable and unique: clients generated from the document name their functions after them."""
    ids = {key: operation["operationId"] for key, operation in operations(spec).items()}
    assert ids == served_operations(app), "give the APIBlueprint operation_id_callback=view_name (app.core.openapi)"
    assert len(set(ids.values())) == len(ids), "two views share a name"
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", operation_id) for operation_id in ids.values())
    assert {"list_users", "get_user", "update_user", "login", "get_metrics", "register_service"} <= set(ids.values())


def test_a_client_generated_from_the_document_reads_plainly_and_works(app, spec, make_user, tmp_path, monkeypatch):
    """openapi-python-client makes a module per operation, named after its id: api.users.get_user."""
    document, config, output = tmp_path / "openapi.json", tmp_path / "config.yaml", tmp_path / "generated_client"
    document.write_text(json.dumps(spec))
    config.write_text("post_hooks: []\n")  # no formatting pass over the generated code
    generate = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document), "--meta", "none"]
    options = ["--fail-on-warning", "--config", str(config), "--output-path", str(output)]
    generated = subprocess.run([*generate, *options], capture_output=True, text=True)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    monkeypatch.syspath_prepend(tmp_path)
    from generated_client import AuthenticatedClient, Client
    from generated_client.api.auth import login
    from generated_client.api.users import get_user
    from generated_client.models import LoginRequest

    alice = make_user("alice")
    to_the_app = {"transport": httpx.WSGITransport(app=app)}
    anyone = Client("http://testserver", httpx_args=to_the_app)
    tokens = login.sync(client=anyone, body=LoginRequest(username="alice", password=PASSWORD))
    as_alice = AuthenticatedClient("http://testserver", token=tokens.access_token, httpx_args=to_the_app)
    assert get_user.sync(alice, client=as_alice).username == "alice"


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


def test_the_documented_security_is_what_each_operation_asks_for(database_url, spec):
    """In production, an operation documented with the bearer scheme refuses a call without a token
    (before it looks at the body); every other operation lets one through. (Development opens the
    Nacos reads for the seed's curl examples.)"""
    client = create_app(production_settings(database_url)).test_client()
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
