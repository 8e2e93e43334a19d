"""Token shapes."""

from pydantic import BaseModel, Field

from app.schema.common import StrictInput
from app.schema.users import UserOut


class TokenPair(BaseModel):
    access_token: str = Field(description="A JWT to send as `Authorization: Bearer …`.")
    refresh_token: str = Field(description="Single use: trade it at `/api/token/refresh`.")
    token_type: str = Field(default="bearer", examples=["bearer"])
    expires_in: int = Field(description="The access token's lifetime in seconds.", examples=[900])


class RegisterOut(TokenPair):
    user: UserOut


class PasswordLogin(StrictInput):
    """The JSON form of the login; the OAuth2 form uses `username` for the email."""

    email: str = Field(examples=["ada@example.com"])
    password: str = Field(examples=["correct horse battery staple"])


class RefreshRequest(StrictInput):
    refresh_token: str


class VerifyRequest(StrictInput):
    token: str


class Verified(BaseModel):
    """An empty object: the token is a valid access token."""
