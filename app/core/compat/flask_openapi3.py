"""flask-openapi3 (pinned 4.3.2): request validation inside a view decorator.

The token is checked before the request is validated (an anonymous caller gets 401, not 422), so
validation runs inside the auth decorators rather than before the view as flask-openapi3 does.
The public way, `flask_openapi3.validate_request()`, re-reads the view's parameter models and builds
their JSON schemas on every request (about 2 ms for a body: a tenth of a request's time); here they
are read once, when the view is decorated, and the rest is flask-openapi3's own validation:
`_validate_request` (same errors, through the app's `validation_error_callback`) and the
`__delay_validate_request__` mark that `validate_request()` itself sets to tell the view wrapper
not to validate a second time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask_openapi3.request import _validate_request
from flask_openapi3.utils import parse_parameters

VALIDATED_INSIDE = "__delay_validate_request__"


def validated(view: Callable) -> Callable:
    """`view`, validating its path, query and body itself (as `validate_request()` does)."""
    models = parse_parameters(view, doc_ui=False)

    @functools.wraps(view)
    def validating(*args, **kwargs):
        return view(*args, **{**_validate_request(*models, path_kwargs=kwargs), **kwargs})

    setattr(validating, VALIDATED_INSIDE, True)
    return validating
