"""JWT settings and issuing: what a token holds and how long it lasts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_jwt_extended import create_access_token, create_refresh_token

from app.config import Settings
from app.models import TokenFamily

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


def issue_tokens(*, user_id: int, family: TokenFamily, expires_in: timedelta) -> dict[str, Any]:
    """A new access + refresh pair for one login; the refresh token's jti is the family's current one."""
    claims = {FAMILY_CLAIM: family.id}
    return {
        "access_token": create_access_token(identity=str(user_id), additional_claims=claims),
        "refresh_token": create_refresh_token(
            identity=str(user_id), additional_claims={**claims, "jti": family.refresh_jti}
        ),
        "token_type": "Bearer",
        "expires_in": int(expires_in.total_seconds()),
    }
