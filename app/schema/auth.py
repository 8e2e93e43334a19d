"""Token shapes."""

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
