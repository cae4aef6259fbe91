"""Every model, imported here so that Alembic's autogenerate sees them all."""

from app.models.base import BaseModel
from app.models.user import Role, TokenFamily, User

__all__ = ["BaseModel", "Role", "TokenFamily", "User"]
