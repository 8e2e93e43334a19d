"""Shapes of password recovery and email verification."""

from typing import Annotated

from pydantic import BaseModel, Field

from app.schema.common import StrictInput
from app.schema.users import Email, NewPassword

# A token is 43 characters (32 random bytes, base64url); anything far longer is
# not one, and is refused before it is even hashed.
MAX_TOKEN_LENGTH = 200
MailedToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TOKEN_LENGTH,
        description="The token from the mailed link (after `#token=`).",
        examples=["Jq3cV9mZ0b5Xy1Lr8sT2uW4eK6nP7hA0dF3gH5jB9kM"],
    ),
]


class AddressRequest(StrictInput):
    """An address to mail: the answer is the same whether or not it has an account."""

    email: Email


class PasswordReset(StrictInput):
    token: MailedToken
    new_password: NewPassword


class EmailVerification(StrictInput):
    token: MailedToken


class MailQueued(BaseModel):
    """The request was taken; whether a mail goes out is not said (it would tell
    who has an account)."""

    message: str = Field(
        examples=["If an active account has this address, a mail with a link is on its way."]
    )
