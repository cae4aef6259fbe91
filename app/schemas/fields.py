"""Field types and base bodies that every resource's schemas share."""

import copy
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

# Usernames and emails are compared lower-case everywhere (see User).
Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$"),
    AfterValidator(str.lower),
    Field(examples=["testuser"], description="3-32 letters, digits, '_', '.' or '-'; case-insensitive"),
]
Email = Annotated[EmailStr, Field(max_length=254, examples=["test@example.com"]), AfterValidator(str.lower)]
# PostgreSQL cannot hold NUL characters: free text that reaches a query must not carry them.
NO_NUL = r"^[^\x00]*$"
# An upper bound, not a truncation: Argon2 hashes the whole password, and the bound keeps hashing cheap.
Password = Annotated[str, Field(min_length=8, max_length=128, examples=["password123"])]


class QueryParameters(BaseModel):
    """A route's query parameters. flask-openapi3 (4.3) builds the query model's JSON schema on every
    request, to find its list fields: about a third of the list page's CPU. Each schema is built once
    here, and each caller gets its own copy."""

    @classmethod
    def model_json_schema(cls, *args, **kwargs) -> dict[str, Any]:
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _QUERY_SCHEMAS:
            _QUERY_SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return copy.deepcopy(_QUERY_SCHEMAS[key])


_QUERY_SCHEMAS: dict[tuple, dict[str, Any]] = {}


class StrictBody(BaseModel):
    """Unknown fields are an error, so that a misspelt or forbidden field is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _no_null_defaults(schema: dict) -> None:
    for field in schema["properties"].values():
        if "default" in field and field["default"] is None:
            del field["default"]


class PartialBody(StrictBody):
    """A partial update: every field defaults to None, which means "leave it as it is" (defaults are
    not validated, so an omitted field is None while an explicit null is still refused by the
    field's type). The document leaves that default out: `default: null` is not a value of the type."""

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)
