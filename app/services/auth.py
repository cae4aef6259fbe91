"""Logins and their tokens: register, log in, rotate the refresh token, log out."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import delete, or_, select, update

from app.auth.guesses import account_of, check_password_guess
from app.auth.jwt import Caller
from app.auth.tokens import FAMILY_CLAIM, issue_tokens
from app.core.errors import APIError
from app.extensions import current_passwords, current_settings, db
from app.models import TokenFamily, User
from app.models.base import utcnow

log = structlog.get_logger(__name__)

# One message for an unknown account, a wrong password and a disabled account: no enumeration.
INVALID_CREDENTIALS = "Invalid username or password."


def login(*, username: str, password: str) -> dict[str, Any]:
    """Tokens for a username-or-email and password."""
    auth = current_settings().auth
    user = db.session.scalar(select(User).where(_named(username)))
    account = account_of(user_id=user.id if user else None, name=username)
    matches = check_password_guess(account=account, verify=lambda: _password_matches(user, password))
    if not matches or not user.is_active:
        raise APIError(401, INVALID_CREDENTIALS)

    now = utcnow()
    db.session.execute(delete(TokenFamily).where(TokenFamily.user_id == user.id, TokenFamily.expires_at <= now))
    family = TokenFamily(user=user, refresh_jti=_new_jti(), expires_at=now + auth.refresh_token_expires)
    db.session.add(family)
    db.session.commit()
    log.info("user logged in", user_id=user.id)
    return issue_tokens(user_id=user.id, family=family, expires_in=auth.access_token_expires)


def refresh(*, user: Caller, claims: dict[str, Any]) -> dict[str, Any]:
    """Rotate: the presented refresh token is spent and a new pair issued.

    A refresh token presented twice means it leaked; the whole login is revoked so that
    neither the thief nor the owner can go on with it.
    """
    family_id = claims[FAMILY_CLAIM]
    new_jti = _new_jti()
    # Compare-and-swap, so that two concurrent uses of one token cannot both succeed.
    rotated = db.session.execute(
        update(TokenFamily)
        .where(
            TokenFamily.id == family_id,
            TokenFamily.refresh_jti == claims["jti"],
            TokenFamily.revoked_at.is_(None),
        )
        .values(refresh_jti=new_jti)
    ).rowcount
    if rotated != 1:
        _revoke_family(family_id)
        log.warning("refresh token reused; login revoked", user_id=user.id, family_id=family_id)
        raise APIError(
            401,
            "This refresh token was already used; the login has been revoked.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    db.session.commit()
    family = db.session.get(TokenFamily, family_id)
    return issue_tokens(user_id=user.id, family=family, expires_in=current_settings().auth.access_token_expires)


def logout(*, claims: dict[str, Any]) -> None:
    """Revoke the login the token belongs to: its access and refresh tokens stop working."""
    _revoke_family(claims[FAMILY_CLAIM])


def _revoke_family(family_id: int) -> None:
    db.session.execute(
        update(TokenFamily)
        .where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.session.commit()


def _password_matches(user: User | None, password: str) -> bool:
    if user is None:
        current_passwords().waste_time(password)
        return False
    return user.check_password(password)


def _named(name: str):
    identifier = name.strip().lower()
    return or_(User.username == identifier, User.email == identifier)


def _new_jti() -> str:
    return str(uuid.uuid4())
