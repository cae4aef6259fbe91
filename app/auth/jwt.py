"""Which user a token stands for, and every token failure as a 401: the callbacks of the app's
JWTManager, registered by init_jwt() when the app is built."""

from __future__ import annotations

from flask import Flask, Response
from sqlalchemy import bindparam, select

from app.auth.tokens import FAMILY_CLAIM, MAX_ID, TOKEN_TYPES
from app.core.errors import error_response
from app.extensions import db, jwt
from app.models import TokenFamily, User
from app.models.base import utcnow

# Built once: building the statement and its cache key on every request cost as much as running it.
_ACTIVE_LOGIN_USER = (
    select(User)
    .join(TokenFamily, TokenFamily.user_id == User.id)
    .where(
        User.id == bindparam("user_id"),
        User.is_active.is_(True),
        TokenFamily.id == bindparam("family_id"),
        TokenFamily.revoked_at.is_(None),
        TokenFamily.expires_at > bindparam("now"),
    )
)


def init_jwt(app: Flask) -> None:
    jwt.init_app(app)
    jwt.user_lookup_loader(_load_user)
    jwt.token_verification_loader(_claims_are_ours)
    jwt.unauthorized_loader(lambda _reason: _unauthorized("A bearer token is required."))
    jwt.invalid_token_loader(lambda _reason: _unauthorized("The token is invalid."))
    jwt.token_verification_failed_loader(lambda _header, _claims: _unauthorized("The token is invalid."))
    jwt.expired_token_loader(lambda _header, _claims: _unauthorized("The token has expired."))
    jwt.revoked_token_loader(lambda _header, _claims: _unauthorized("The token has been revoked."))
    jwt.user_lookup_error_loader(lambda _header, _claims: _unauthorized("The token has been revoked."))


def _load_user(_header: dict, claims: dict) -> User | None:
    # Read on every request, so that disabling a user or revoking a login applies at once.
    return db.session.scalar(
        _ACTIVE_LOGIN_USER,
        {"user_id": int(claims["sub"]), "family_id": claims.get(FAMILY_CLAIM), "now": utcnow()},
    )


def _claims_are_ours(_header: dict, claims: dict) -> bool:
    """A correctly signed token whose claims are not shaped as this service issues them (a
    hand-made one) is refused as invalid, rather than failing further in. The library fills in a
    missing `type` as "access" and a missing `jti` as None; verifying the signature checks that
    `sub` is a string."""
    subject, family = claims["sub"], claims.get(FAMILY_CLAIM)
    return (
        len(subject) <= len(str(MAX_ID))
        and subject.isascii()
        and subject.isdigit()
        and 0 < int(subject) <= MAX_ID
        and type(family) is int  # not a bool, a float or a string
        and 0 < family <= MAX_ID
        and isinstance(claims["jti"], str)
        and claims["type"] in TOKEN_TYPES
    )


def _unauthorized(message: str) -> Response:
    return error_response(401, message, headers={"WWW-Authenticate": "Bearer"})
