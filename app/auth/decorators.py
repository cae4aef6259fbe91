"""What a view asks of its caller: a valid access (or refresh) token, an administrator."""

from __future__ import annotations

import functools
from collections.abc import Callable

from app.auth.jwt import authenticate, current_caller
from app.core.compat.flask_openapi3 import validated
from app.core.errors import APIError
from app.extensions import current_settings


def login_required(view: Callable) -> Callable:
    """Check the access token before the request is validated: anonymous callers get 401, not 422."""
    return _token_required(validated(view), refresh=False)


def refresh_token_required(view: Callable) -> Callable:
    """A refresh token instead of an access token (/auth/refresh only)."""
    return _token_required(validated(view), refresh=True)


def admin_required(view: Callable) -> Callable:
    """login_required, and the caller must be an administrator (403 otherwise)."""

    @functools.wraps(view)
    def only_admins(*args, **kwargs):
        if not current_caller().is_admin:
            raise APIError(403, "Administrators only.")
        return view(*args, **kwargs)

    return login_required(only_admins)


def admin_required_in_production(view: Callable) -> Callable:
    """admin_required in production; open in development and testing, where a plain curl must do."""
    guarded, open_ = admin_required(view), validated(view)

    @functools.wraps(guarded)  # keeps the mark that validation happens inside
    def admins_in_production(*args, **kwargs):
        production = current_settings().app.production
        return (guarded if production else open_)(*args, **kwargs)

    return admins_in_production


def _token_required(view: Callable, *, refresh: bool) -> Callable:
    @functools.wraps(view)
    def authenticated(*args, **kwargs):
        authenticate(refresh=refresh)
        return view(*args, **kwargs)

    return authenticated
