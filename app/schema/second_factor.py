"""Second-factor shapes: the TOTP setup shown once, the code that confirms,
disables or renews it, recovery codes shown once, and the login's second step."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.schema.common import StrictInput

# Longer than any code (6 digits, or a recovery code with its dashes and some
# spaces); the challenge is 43 characters.
MAX_CODE_LENGTH = 64
MAX_CHALLENGE_LENGTH = 200
CODE_EXAMPLE = "492039"
RECOVERY_CODE_EXAMPLE = "k7qm-2xzp-dn4r-w6ty"
CHALLENGE_EXAMPLE = "Xb8q3T0C1hQm6mP6c9Kz4ZrJ5yqN1o2LwVdE7aUuHfs"

Code = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CODE_LENGTH,
        description="A current code of the authenticator app (6 digits), or an unused "
        "recovery code (which it spends).",
        examples=[CODE_EXAMPLE],
    ),
]


class TotpStatus(BaseModel):
    enabled: bool = Field(description="Whether logins ask for a second factor.")
    recovery_codes_left: int = Field(
        description="Unused recovery codes (0 when not enabled).", examples=[10]
    )


class TotpSetup(BaseModel):
    """The new secret, shown this once: add it to an authenticator app (scan the
    QR code, or type the secret), then confirm a code from it."""

    secret: str = Field(
        description="The base32 secret, for typing into an app by hand.",
        examples=["JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"],
    )
    otpauth_uri: str = Field(
        description="The `otpauth://totp/…` URI the QR code holds.",
        examples=[
            "otpauth://totp/FastAPI%20Stack:ada%40example.com?secret=JBSWY3DPEHPK3PXP"
            "JBSWY3DPEHPK3PXP&issuer=FastAPI%20Stack"
        ],
    )
    qr_svg: str = Field(description="The URI as a QR code: an SVG document, to show as is.")


class CodeIn(StrictInput):
    code: Code


class ConfirmIn(StrictInput):
    code: str = Field(
        min_length=1,
        max_length=MAX_CODE_LENGTH,
        description="A current code of the authenticator app the secret was added to.",
        examples=[CODE_EXAMPLE],
    )


class RecoveryCodesOut(BaseModel):
    """Shown this once: only their hashes are kept. Each works once, in place of
    a code of the authenticator app."""

    recovery_codes: list[str] = Field(examples=[[RECOVERY_CODE_EXAMPLE]])


class SecondStepLogin(StrictInput):
    challenge: str = Field(
        min_length=1,
        max_length=MAX_CHALLENGE_LENGTH,
        description="The `challenge` of the login's `202` answer.",
        examples=[CHALLENGE_EXAMPLE],
    )
    code: Code


class SecondStepOut(BaseModel):
    """The password was right; the account has a second factor. No session yet:
    send the challenge with a code to the second-factor route."""

    second_factor_required: Literal[True] = True
    challenge: str = Field(
        description="Single use, for this login only; dies after 5 wrong codes, at "
        "`expires_in`, or when the account's password changes.",
        examples=[CHALLENGE_EXAMPLE],
    )
    methods: list[str] = Field(
        description="What the second step accepts: `totp` (a code of the authenticator "
        "app), `recovery_code`.",
        examples=[["totp", "recovery_code"]],
    )
    expires_in: int = Field(description="Seconds the challenge stays valid.", examples=[300])
