"""The framework's infrastructure: logging, errors, web headers, metrics collectors, OpenAPI.

Not the place for the service's own code: resources go in app/api/resources/, models in app/models/.
"""
