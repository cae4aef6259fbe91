"""Request and response bodies of /auth."""

from pydantic import BaseModel, Field

from app.schemas.fields import NO_NUL, Email, Password, StrictBody, Username


class RegisterRequest(StrictBody):
    username: Username
    email: Email
    password: Password


class LoginRequest(StrictBody):
    username: str = Field(min_length=1, max_length=254, pattern=NO_NUL, description="Username or email address")
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the access token expires", examples=[900])
