"""/api/v1: the service's own resources. Add a module per resource and list its blueprint here."""

from app.api.resources.health import health
from app.api.resources.user import users

blueprints = [health, users]
