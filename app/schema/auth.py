"""Token and session shapes."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PasswordForm(StrictInput):
    """The OAuth2 password grant's form (RFC 6749 §4.3.2), as *Authorize* in /docs
    sends it: `username` is the email. `scope`, and any other field a client adds
    (`client_id`…), is accepted and never read."""

    model_config = ConfigDict(extra="ignore")

    grant_type: Literal["password", ""] | None = None
    username: str = Field(description="Your email.")
    password: str = Field(json_schema_extra={"format": "password"})
    scope: str = ""

    def as_login(self) -> PasswordLogin:
        return PasswordLogin(email=self.username, password=self.password)


class RefreshRequest(StrictInput):
    refresh_token: str


class VerifyRequest(StrictInput):
    token: str


class Verified(BaseModel):
    """An empty object: the token is a valid access token."""


class SessionOut(BaseModel):
    """A live session: one login and the refresh tokens rotated from it. Ending it
    ends its refresh token and its access tokens at once."""

    id: uuid.UUID
    created_at: datetime = Field(description="The login.")
    last_used_at: datetime = Field(description="The last refresh, or the login if none.")
    expires_at: datetime = Field(
        description="When it ends unless refreshed before; each refresh moves it to the "
        "new refresh token's expiry."
    )
    user_agent: str | None = Field(
        description="The client's User-Agent at login (at most 512 characters; null if "
        "it sent none).",
        examples=["Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"],
    )
    client_address: str | None = Field(
        description="The client's address at login.", examples=["203.0.113.7"]
    )
    last_user_agent: str | None = Field(
        description="The User-Agent at the last refresh (the login's if none).",
        examples=["Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"],
    )
    last_client_address: str | None = Field(
        description="The address at the last refresh (the login's if none).",
        examples=["198.51.100.23"],
    )
    current: bool = Field(
        description="Whether the bearer token of this request belongs to this session."
    )
