"""/api/v1: the service's own resources. Add a module per resource and list its blueprint here."""

from app.api.health import health
from app.api.users import users

blueprints = [health, users]
