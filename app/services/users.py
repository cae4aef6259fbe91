"""Accounts: create, find, list, change, delete, with who-may-do-what enforced here."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, bindparam, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.auth.guesses import check_current_password
from app.auth.jwt import Caller
from app.auth.policy import check_password_policy
from app.core.errors import APIError
from app.extensions import db
from app.models import Role, TokenFamily, User
from app.models.base import utcnow

MAX_PER_PAGE = 100
SORT_COLUMNS = {"id": User.id, "username": User.username, "created_at": User.created_at}
ADMIN_ONLY_FIELDS = ("role", "is_active")
# A user's fields as an answer shows them (the caller's, read by the token check), one Core row:
# reading a user only to show it needs no ORM object, which costs twice the query.
_SHOWN_USERS = select(*(getattr(User, field) for field in Caller.__dataclass_fields__))
_SHOWN_USER = _SHOWN_USERS.where(User.id == bindparam("user_id"))


def create_user(*, username: str, email: str, password: str, role: Role = Role.USER) -> User:
    check_password_policy(password, username=username)
    _ensure_unique(username=username, email=email)
    user = User(username=username, email=email, role=role)
    user.set_password(password)
    db.session.add(user)
    _commit_unique()
    return user


def get_user(*, user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise APIError(404, "No such user.")
    return user


def show_user(*, user_id: int) -> Row:
    """get_user(), for an answer only: the fields shown, not an object to change."""
    row = db.session.connection().execute(_SHOWN_USER, {"user_id": user_id}).first()
    if row is None:
        raise APIError(404, "No such user.")
    return row


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, and the page fields Flask-SQLAlchemy's pagination gives."""

    items: list[Row]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.per_page)


def list_users(*, viewer: Caller, page: int, per_page: int, q: str | None, sort: str) -> Page:
    """One page of users (Core rows of the fields shown) and the total; per_page is capped at
    MAX_PER_PAGE, a page past the end is empty."""
    per_page = min(per_page, MAX_PER_PAGE)
    searched = ("username", "email") if viewer.is_admin else ("username",)  # others' emails are not searchable
    parameters = {"limit": per_page, "offset": (page - 1) * per_page}
    if q:
        parameters["pattern"] = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    statements = _list_statements(sort=sort, searched=searched if q else ())
    connection = db.session.connection()
    items = connection.execute(statements.page, parameters).all()
    total = connection.scalar(statements.count, parameters)
    return Page(items=items, page=page, per_page=per_page, total=total)


@dataclass(frozen=True)
class _ListStatements:
    page: Select
    count: Select


@functools.cache
def _list_statements(*, sort: str, searched: tuple[str, ...]) -> _ListStatements:
    """A list's two statements, built once for each sort order and set of searched fields: a statement
    built anew for each request cost SQLAlchemy as much again to build and to match to its compiled
    form as to run."""
    pattern = bindparam("pattern")
    where = [or_(*(getattr(User, field).like(pattern, escape="\\") for field in searched))] if searched else []
    column = SORT_COLUMNS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    ordering = (order, User.id.asc())
    # The page's ids first, then their rows (a deferred join): skipping OFFSET entries then walks
    # the index alone, not the table's rows (the last of 100,000 users: 26 -> 15 ms in PostgreSQL).
    ids = select(User.id).where(*where).order_by(*ordering)
    ids = ids.limit(bindparam("limit")).offset(bindparam("offset")).subquery()
    return _ListStatements(
        page=_SHOWN_USERS.join(ids, ids.c.id == User.id).order_by(*ordering),
        # The rows themselves, counted: not the page's query as a subquery.
        count=select(func.count()).select_from(User).where(*where),
    )


def update_user(*, viewer: Caller, user: User, changes: dict[str, Any], current_family_id: int | None) -> User:
    """Apply a partial update. Admins may change anyone and any field; users only their own profile."""
    is_self = viewer.id == user.id
    if not (is_self or viewer.is_admin):
        raise APIError(403, "You may only change your own account.")
    if not viewer.is_admin and (forbidden := [f for f in ADMIN_ONLY_FIELDS if f in changes]):
        raise APIError(
            422,
            "The request is invalid.",
            details=[{"field": f, "message": "Only administrators may change this field."} for f in forbidden],
        )
    current_password = changes.pop("current_password", None)
    if (
        is_self
        and ({"password", "email"} & changes.keys())
        and (current_password is None or not check_current_password(user=user, password=current_password))
    ):
        raise APIError(
            422,
            "The request is invalid.",
            details=[{"field": "current_password", "message": "Your current password is needed to change this."}],
        )
    if changes.get("role") is Role.USER or changes.get("is_active") is False:
        _keep_an_admin(losing=user)
    _ensure_unique(username=changes.get("username"), email=changes.get("email"), exclude=user)

    password = changes.pop("password", None)
    if password is not None:
        check_password_policy(password, username=changes.get("username", user.username))
    for field, value in changes.items():
        setattr(user, field, value)
    if password is not None:
        user.set_password(password)
    if password is not None or changes.get("is_active") is False:
        # Every other login of the account ends; the caller's own stays if it changed its own password.
        _revoke_logins(user=user, keep_family_id=current_family_id if is_self else None)
    _commit_unique()
    return user


def delete_user(*, viewer: Caller, user: User) -> None:
    if viewer.id != user.id and not viewer.is_admin:
        raise APIError(403, "You may only delete your own account.")
    _keep_an_admin(losing=user)
    db.session.delete(user)
    db.session.commit()


def _ensure_unique(*, username: str | None, email: str | None, exclude: User | None = None) -> None:
    """A friendly 409 naming the field; the unique constraints still decide races (_commit_unique)."""
    details = []
    for field, value in (("username", username), ("email", email)):
        if value is None:
            continue
        taken = select(User.id).where(getattr(User, field) == value)
        if exclude is not None:
            taken = taken.where(User.id != exclude.id)
        if db.session.scalar(taken) is not None:
            details.append({"field": field, "message": f"This {field} is already taken."})
    if details:
        raise APIError(409, "An account with these details already exists.", details=details)


def _commit_unique() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        # Another request inserted the same name or email between our check and our commit.
        db.session.rollback()
        raise APIError(409, "An account with these details already exists.") from None


def _keep_an_admin(*, losing: User) -> None:
    if not (losing.is_admin and losing.is_active):
        return
    # Lock every active admin row, in id order: two admins demoting each other at once then run
    # one after the other (the second sees the first's change) instead of both seeing "one other
    # admin left". SQLite has no row locks and ignores FOR UPDATE: a write that changes nothing
    # takes its database-wide write lock instead.
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(update(User).where(false()).values(id=User.id))
    admins = db.session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True)).order_by(User.id).with_for_update()
    ).all()
    if not set(admins) - {losing.id}:
        raise APIError(409, "At least one active administrator must remain.")


def _revoke_logins(*, user: User, keep_family_id: int | None) -> None:
    statement = (
        update(TokenFamily)
        .where(TokenFamily.user_id == user.id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if keep_family_id is not None:
        statement = statement.where(TokenFamily.id != keep_family_id)
    db.session.execute(statement)
