"""Accounts, and the logins (token families) that hold their refresh tokens."""

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import current_passwords
from app.models.base import BaseModel, UTCDateTime


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(BaseModel):
    __tablename__ = "users"

    # Both stored lower-case, so that the unique constraints are case-insensitive on every database.
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda roles: [r.value for r in roles]),
        default=Role.USER,
    )
    is_active: Mapped[bool] = mapped_column(default=True)

    token_families: Mapped[list["TokenFamily"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def set_password(self, password: str) -> None:
        self.password_hash = current_passwords().hash(password)

    def check_password(self, password: str) -> bool:
        """Verify, and upgrade the stored hash when the configured Argon2 cost has changed."""
        passwords = current_passwords()
        if not passwords.verify(self.password_hash, password):
            return False
        if passwords.needs_rehash(self.password_hash):
            self.set_password(password)
        return True

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username}>"


class TokenFamily(BaseModel):
    """One login: the access and refresh tokens issued from it carry its id as `fam`.

    Revoking the family (logout, refresh-token reuse, password change) revokes every token of
    that login at once; `refresh_jti` is the only refresh token of the family still usable.
    """

    __tablename__ = "token_families"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    refresh_jti: Mapped[str] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship(back_populates="token_families")
