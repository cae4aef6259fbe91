"""Flask-Limiter 4.1: its request hooks run only on the requests that checked a limit.

Flask-Limiter hooks every request: before the view it looks for application and default limits,
after it adds the headers of the limits checked, and at the end it resets its state for the request.
The service sets neither application nor default limits; every limit is a view's own
(limit_from_setting), checked when the view or the block runs. On every other request the hooks find
nothing, at about a sixth of the liveness route's CPU. Flask-Limiter has no public switch for that
(its request_filter would exempt the views' own limits too). So its before-request hook goes, and the
other two run only where Flask-Limiter made its state for the request (on Flask's request context, at
the first limit checked). Its hooks are found as Limiter.init_app registers them.
"""

from __future__ import annotations

from flask import Flask, Response
from flask.globals import request_ctx
from flask_limiter import Limiter

_REQUEST_STATE = "_limiter_request_context"


def hook_only_limited_requests(app: Flask, limiter: Limiter) -> None:
    """After limiter.init_app(app), for a limiter without application or default limits."""
    if limiter.limit_manager.application_limits or limiter.limit_manager.default_limits:
        raise RuntimeError("the limiter has application or default limits: its before-request hook checks them")
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    after_funcs = app.after_request_funcs[None]
    (add_headers,) = [hook for hook in after_funcs if getattr(hook, "args", None) == (limiter,)]
    teardown_funcs = app.teardown_request_funcs[None]
    release = limiter._Limiter__release_context

    def add_limit_headers(response: Response) -> Response:
        return add_headers(response) if checked_a_limit() else response

    def release_state(exc: BaseException | None) -> None:
        if checked_a_limit():
            release(exc)

    # In the same places: Flask runs the hooks in the order they were registered (after-request
    # hooks in reverse), and the limit headers go on before the others see the response.
    after_funcs[after_funcs.index(add_headers)] = add_limit_headers
    teardown_funcs[teardown_funcs.index(release)] = release_state


def checked_a_limit() -> bool:
    return _REQUEST_STATE in vars(request_ctx._get_current_object())
