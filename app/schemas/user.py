"""Bodies and parameters of /api/v1/users."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool
from sqlalchemy import Row

from app.auth.jwt import Caller
from app.models import Role, User
from app.schemas.fields import NO_NUL, Email, PartialBody, Password, QueryParameters, Username

if TYPE_CHECKING:  # the type only: the services are the layer above
    from app.services.users import Page


class UserPublic(BaseModel):
    """What any logged-in user may see of another."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    created_at: datetime


class UserPrivate(UserPublic):
    """The whole record: for its owner and for admins."""

    email: str
    role: Role
    is_active: bool
    updated_at: datetime


class UserView(RootModel[UserPrivate | UserPublic]):
    """The whole record for its owner and admins, the public fields for everyone else."""


def present_user(user: User | Caller | Row, *, viewer: Caller) -> UserPublic:
    """The user as the viewer may see it: UserPrivate for its owner and admins, UserPublic for others."""
    schema = UserPrivate if viewer.is_admin or viewer.id == user.id else UserPublic
    return schema.model_validate(user)


class UserPath(BaseModel):
    # Bounded by the id column (a 32-bit INTEGER on every database): a larger id is a clean 422,
    # not a driver overflow.
    user_id: int = Field(ge=1, le=2**31 - 1)


class UserListQuery(QueryParameters):
    model_config = ConfigDict(extra="forbid")

    page: int = Field(1, ge=1, le=10_000_000)
    per_page: int = Field(20, ge=1, description="Page size; values above 100 are served as 100")
    q: str | None = Field(
        None, max_length=100, pattern=NO_NUL, description="Search in usernames (and emails, for admins)"
    )
    sort: Literal["id", "-id", "username", "-username", "created_at", "-created_at"] = "id"


class UserPage(BaseModel):
    items: list[UserView]
    page: int
    per_page: int
    total: int
    pages: int

    @classmethod
    def present(cls, page: Page, *, viewer: Caller) -> UserPage:
        """One page of users, each as the viewer may see it."""
        return cls(
            items=[UserView(present_user(user, viewer=viewer)) for user in page.items],
            page=page.page,
            per_page=page.per_page,
            total=page.total,
            pages=page.pages,
        )


class UserUpdate(PartialBody):
    """Every field optional. `role` and `is_active` are for admins; changing your own password or
    email needs `current_password`."""

    username: Username = None
    email: Email = None
    password: Password = None
    current_password: str = Field(None, max_length=1024)
    role: Role = None
    is_active: StrictBool = None
