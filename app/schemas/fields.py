"""Field types and base bodies that every resource's schemas share."""

from typing import Annotated

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
