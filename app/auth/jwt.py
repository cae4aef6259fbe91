"""Who is calling: the bearer token verified once, and its login and user checked live in one query.

Flask-JWT-Extended issues the tokens (app/auth/tokens.py); verifying one is done here, with PyJWT,
because the library's `jwt_required()` parses each token four times (twice unverified, once
verified, once more for its header) and loads the user through a callback returning an ORM object:
together about half of what an authenticated request cost. The checks are the library's (the
`Bearer` header, signature, expiry, `sub` a string, the token's type), plus ours on the claims'
shape, and every failure is the same 401 as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt as pyjwt
from flask import current_app, g, request
from sqlalchemy import bindparam, select

from app.auth.tokens import FAMILY_CLAIM, MAX_ID, TOKEN_TYPES
from app.core.errors import APIError
from app.extensions import db
from app.models import Role, TokenFamily, User
from app.models.base import utcnow

_HEADER_FIELDS = re.compile(r",\s*")  # an Authorization header may hold several comma-separated credentials


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a live login's token stands for, as read for this request (no password hash)."""

    id: int
    username: str
    email: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


# Built once: building the statement and its cache key on every request cost as much as running it.
# Read on every request, so that disabling a user or revoking a login applies at once, everywhere.
_LIVE_LOGIN_CALLER = (
    select(*(getattr(User, field) for field in Caller.__dataclass_fields__))
    .join(TokenFamily, TokenFamily.user_id == User.id)
    .where(
        User.id == bindparam("user_id"),
        User.is_active.is_(True),
        TokenFamily.id == bindparam("family_id"),
        TokenFamily.revoked_at.is_(None),
        TokenFamily.expires_at > bindparam("now"),
    )
)


def authenticate(*, refresh: bool = False) -> None:
    """Check the request's access token, or refresh token (401 otherwise) and keep its caller and claims
    for the request (current_caller(), current_claims())."""
    claims = _verified_claims(_bearer_token())
    if not _claims_are_ours(claims) or claims["type"] != ("refresh" if refresh else "access"):
        raise _unauthorized("The token is invalid.")
    # The Core statement goes through the session's connection: one transaction for the request.
    login = {"user_id": int(claims["sub"]), "family_id": claims[FAMILY_CLAIM], "now": utcnow()}
    row = db.session.connection().execute(_LIVE_LOGIN_CALLER, login).first()
    if row is None:
        raise _unauthorized("The token has been revoked.")
    g.caller, g.token_claims = Caller(*row), claims


def current_caller() -> Caller:
    """The caller of a view that requires a token."""
    return g.caller


def authenticated_caller() -> Caller | None:
    """The caller once this request's token has been checked; None before, or without a token."""
    return g.get("caller")


def current_claims() -> dict[str, Any]:
    """The verified claims of the request's token."""
    return g.token_claims


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "").strip().strip(",")
    bearer = [field for field in _HEADER_FIELDS.split(header) if field and field.split()[0] == "Bearer"]
    if len(bearer) != 1:
        raise _unauthorized("A bearer token is required.")
    parts = bearer[0].split()
    if len(parts) != 2:
        raise _unauthorized("The token is invalid.")
    return parts[1]


def _verified_claims(token: str) -> dict[str, Any]:
    config = current_app.config
    try:
        claims = pyjwt.decode(token, config["JWT_SECRET_KEY"], algorithms=config["JWT_DECODE_ALGORITHMS"])
    except pyjwt.ExpiredSignatureError:
        raise _unauthorized("The token has expired.") from None
    except pyjwt.InvalidTokenError:
        raise _unauthorized("The token is invalid.") from None
    claims.setdefault("type", "access")  # as Flask-JWT-Extended reads a token without one
    return claims


def _claims_are_ours(claims: dict) -> bool:
    """A correctly signed token whose claims are not shaped as this service issues them (a
    hand-made one) is refused as invalid, rather than failing further in. Verifying the signature
    checks that `sub`, when present, is a string."""
    subject, family = claims.get("sub"), claims.get(FAMILY_CLAIM)
    return (
        isinstance(subject, str)
        and len(subject) <= len(str(MAX_ID))
        and subject.isascii()
        and subject.isdigit()
        and 0 < int(subject) <= MAX_ID
        and type(family) is int  # not a bool, a float or a string
        and 0 < family <= MAX_ID
        and isinstance(claims.get("jti"), str)
        and claims["type"] in TOKEN_TYPES
    )


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, headers={"WWW-Authenticate": "Bearer"})
