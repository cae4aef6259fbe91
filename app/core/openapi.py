"""The OpenAPI app class, with a 422 that tells the truth and plain operation ids, and the
documentation pages' addresses."""

from typing import Any

from flask_openapi3 import OpenAPI

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


def view_name(*, name: str, **_: Any) -> str:
    """An operation's id is its view function's name (`list_users`), not flask-openapi3's default of
    blueprint, name, path and method (`users_get_user__int_user_id__get`): generated clients name
    their functions after it. Pass it as `operation_id_callback` to every APIBlueprint; view names
    must then be unique across blueprints (tests/test_docs.py checks)."""
    return name


class ServiceOpenAPI(OpenAPI):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("operation_id_callback", view_name)  # for routes added on the app itself
        super().__init__(*args, **kwargs)

    def generate_spec_json(self) -> None:
        super().generate_spec_json()
        # flask-openapi3 stamps a 422 (as an array) onto every operation. Only an operation with
        # parameters or a body can answer 422, and it answers with the one error envelope.
        for path_item in self.spec_json["paths"].values():
            for operation in path_item.values():
                responses = operation["responses"]
                takes_input = operation.get("parameters") or operation.get("requestBody")
                if not takes_input:
                    responses.pop("422", None)
                elif "422" in responses:
                    responses["422"]["content"]["application/json"]["schema"] = ERROR_SCHEMA


def init_docs(app: OpenAPI) -> None:
    """/openapi.json, /swagger and /redoc come from flask-openapi3; Swagger UI also at /docs."""
    app.add_url_rule("/docs", endpoint="docs", view_func=app.view_functions["swagger.swagger"])
