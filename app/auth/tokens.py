"""JWT handling: which user a token stands for, and every token failure as a 401."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Response
from flask_jwt_extended import create_access_token, create_refresh_token, current_user, jwt_required
from flask_openapi3.request import _validate_request
from flask_openapi3.utils import parse_parameters
from sqlalchemy import bindparam, select

from app.config import Settings
from app.core.errors import APIError, error_response
from app.extensions import current_settings, db, jwt
from app.models import TokenFamily, User
from app.models.base import utcnow

FAMILY_CLAIM = "fam"
TOKEN_TYPES = ("access", "refresh")
MAX_ID = 2**63 - 1  # the largest id the databases hold
BEARER_SECURITY = [{"bearerAuth": []}]


def jwt_config(settings: Settings) -> dict[str, Any]:
    return {
        "JWT_SECRET_KEY": settings.secret("JWT_SECRET_KEY"),
        # One algorithm, pinned for signing and verifying: no "none", no key confusion.
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "JWT_TOKEN_LOCATION": ["headers"],
        # Browsers never send a header token by themselves, so there is no CSRF to guard (and no csrf claim).
        "JWT_COOKIE_CSRF_PROTECT": False,
        "JWT_ACCESS_TOKEN_EXPIRES": settings.auth.access_token_expires,
        "JWT_REFRESH_TOKEN_EXPIRES": settings.auth.refresh_token_expires,
    }


def issue_tokens(*, user: User, family: TokenFamily, expires_in: timedelta) -> dict[str, Any]:
    """A new access + refresh pair for one login; the refresh token's jti is the family's current one."""
    claims = {FAMILY_CLAIM: family.id}
    return {
        "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
        "refresh_token": create_refresh_token(
            identity=str(user.id), additional_claims={**claims, "jti": family.refresh_jti}
        ),
        "token_type": "Bearer",
        "expires_in": int(expires_in.total_seconds()),
    }


def login_required(view: Callable) -> Callable:
    """Check the access token before the request is validated: anonymous callers get 401, not 422."""
    return jwt_required()(_validated(view))


def _validated(view: Callable) -> Callable:
    """flask-openapi3's validate_request(), with the view's parameter models read once here: its own
    reads them, and builds their JSON schemas, on every request (a tenth of a request's time)."""
    models = parse_parameters(view, doc_ui=False)

    @functools.wraps(view)
    def validated(*args, **kwargs):
        return view(*args, **{**_validate_request(*models, path_kwargs=kwargs), **kwargs})

    validated.__delay_validate_request__ = True  # tells flask-openapi3 that validation happens here
    return validated


def admin_required(view: Callable) -> Callable:
    """login_required, and the caller must be an administrator (403 otherwise)."""

    @functools.wraps(view)
    def only_admins(*args, **kwargs):
        if not current_user.is_admin:
            raise APIError(403, "Administrators only.")
        return view(*args, **kwargs)

    return login_required(only_admins)


def admin_required_in_production(view: Callable) -> Callable:
    """admin_required in production; open in development and testing, where a plain curl must do."""
    guarded, open_ = admin_required(view), _validated(view)

    @functools.wraps(guarded)  # keeps the mark that validation happens inside
    def admins_in_production(*args, **kwargs):
        production = current_settings().app.production
        return (guarded if production else open_)(*args, **kwargs)

    return admins_in_production


# Registered on the shared JWTManager at import; create_app() imports this module.


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


@jwt.user_lookup_loader
def _load_user(_header: dict, claims: dict) -> User | None:
    # Read on every request, so that disabling a user or revoking a login applies at once.
    return db.session.scalar(
        _ACTIVE_LOGIN_USER,
        {"user_id": int(claims["sub"]), "family_id": claims.get(FAMILY_CLAIM), "now": utcnow()},
    )


@jwt.token_verification_loader
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


jwt.unauthorized_loader(lambda _reason: _unauthorized("A bearer token is required."))
jwt.invalid_token_loader(lambda _reason: _unauthorized("The token is invalid."))
jwt.token_verification_failed_loader(lambda _header, _claims: _unauthorized("The token is invalid."))
jwt.expired_token_loader(lambda _header, _claims: _unauthorized("The token has expired."))
jwt.revoked_token_loader(lambda _header, _claims: _unauthorized("The token has been revoked."))
jwt.user_lookup_error_loader(lambda _header, _claims: _unauthorized("The token has been revoked."))
