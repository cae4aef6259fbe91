"""The /auth endpoints. Views parse, call a service, and shape the answer; nothing more."""

from flask_openapi3 import APIBlueprint, Tag

from app.auth.decorators import login_required, refresh_token_required
from app.auth.jwt import current_caller, current_claims
from app.auth.tokens import BEARER_SECURITY
from app.core.errors import errors
from app.core.openapi import view_name
from app.extensions import limit_from_setting
from app.schemas.auth import LoginRequest, RegisterRequest, TokenResponse
from app.schemas.user import UserPrivate
from app.services import auth as auth_service
from app.services import users as user_service

auth = APIBlueprint(
    "auth",
    __name__,
    url_prefix="/auth",
    abp_tags=[Tag(name="auth", description="Accounts and tokens")],
    operation_id_callback=view_name,
)


@auth.post("/register", responses={201: UserPrivate, **errors(400, 409, 413, 422, 429)})
@limit_from_setting("RATE_LIMIT_REGISTER")
def register(body: RegisterRequest):
    """Create an account"""
    user = user_service.create_user(username=body.username, email=body.email, password=body.password)
    return UserPrivate.model_validate(user).model_dump(mode="json"), 201


@auth.post("/login", responses={200: TokenResponse, **errors(400, 401, 413, 422, 429)})
@limit_from_setting("RATE_LIMIT_LOGIN")  # the budgets of guesses per account are the service's
def login(body: LoginRequest):
    """Log in with a username or email and a password"""
    return auth_service.login(username=body.username, password=body.password)


@auth.post(
    "/refresh",
    responses={200: TokenResponse, **errors(401, 429)},
    security=BEARER_SECURITY,
    description="Send the refresh token as `Authorization: Bearer <refresh_token>`. "
    "The token is spent: use the new one returned. Presenting a spent token revokes the login.",
)
@limit_from_setting("RATE_LIMIT_REFRESH")
@refresh_token_required
def refresh():
    """Exchange a refresh token for a new token pair"""
    return auth_service.refresh(user=current_caller(), claims=current_claims())


@auth.post("/logout", responses={204: None, **errors(401)}, security=BEARER_SECURITY)
@login_required
def logout():
    """Revoke this login's access and refresh tokens"""
    auth_service.logout(claims=current_claims())
    return "", 204
