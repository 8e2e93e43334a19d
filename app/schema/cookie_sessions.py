"""What the cookie-session routes answer: never a token (those travel as
HttpOnly cookies), only the CSRF token a page must echo in a header."""

from pydantic import BaseModel, Field

from app.schema.users import UserOut

ABOUT_THE_CSRF_HEADER = (
    "Send it as the `X-CSRF-Token` header with every POST, PUT, PATCH and DELETE "
    "authenticated by the cookies. Also in the `__Host-csrf` cookie, which the "
    "page's scripts can read; valid for this session only."
)


class CookieSessionOut(BaseModel):
    """The cookies were set: the session's CSRF token and the access cookie's lifetime."""

    csrf_token: str = Field(
        description=ABOUT_THE_CSRF_HEADER,
        examples=["V2hhdCBhIG5vbmNlIQ.3l3Bq0pYtq3ZC2X8Tg0s7Kx0uQKq6T1i7vvc0n9c8Ik"],
    )
    expires_in: int = Field(
        description="The access cookie's lifetime in seconds: refresh before it ends.",
        examples=[900],
    )


class CookieLoginOut(CookieSessionOut):
    user: UserOut
