"""How the tokens travel, apart from how they were won (app/auth/proofs.py) and
how a session opens (app/auth/service.py): what the two transports share.

- Bearer (`BearerTransport`, app/auth/bearer.py): the token pair in the JSON
  body; the client keeps it and sends `Authorization: Bearer …`.
- Cookies plus CSRF for browsers (`CookieTransport`, app/auth/cookies.py).

Both set the login throttle's device cookie, each for its own token path; it is
declared, read and written here only. The routers are thin: read what their
transport needs, make one service call, answer through the transport.

A login that owes a second factor answers the same on both: 202 with the
challenge, no token, no cookie (`second_step_required`).
"""

from typing import Any

from fastapi import Cookie, Response, status

from app.auth import tokens
from app.auth.service import SecondStepChallenge
from app.config import Settings
from app.schema.second_factor import SecondStepOut

# The login throttle's device cookie: sent only to a transport's token endpoints,
# never to scripts.
DEVICE_COOKIE = "login_device"


async def no_store(response: Response) -> None:
    """Token responses must not be cached anywhere (RFC 6749 §5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def set_cookie(
    response: Response, name: str, value: str, *, max_age: int, path: str, httponly: bool
) -> None:
    """Every cookie of the token flow: Secure and SameSite=Strict."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=True,
        httponly=httponly,
        samesite="strict",
    )


def device_cookie(client: str) -> Any:
    """The device cookie as a route reads it (`client`: who holds it, for /docs)."""
    return Cookie(
        alias=DEVICE_COOKIE,
        description=f"Set by a successful login: this {client}'s failed logins count "
        "against it alone, so others' failures cannot lock it out.",
    )


def remember_device(
    response: Response, device_token: str | None, settings: Settings, *, path: str
) -> None:
    """Hand the client the device cookie a login issued, if it issued one."""
    if device_token is None:
        return
    set_cookie(
        response,
        DEVICE_COOKIE,
        device_token,
        max_age=int(tokens.DeviceToken.lifetime(settings).total_seconds()),
        path=path,
        httponly=True,
    )


SECOND_STEP_RESPONSE: dict[int | str, dict[str, Any]] = {
    status.HTTP_202_ACCEPTED: {
        "model": SecondStepOut,
        "description": "The password is right and the account has a second factor: no "
        "session yet. Send the challenge with a code to the second-factor route.",
    }
}


def second_step_required(step: SecondStepChallenge) -> Response:
    """202 with the challenge: no session, no token, no cookie."""
    answer = SecondStepOut(
        challenge=step.challenge, methods=list(step.methods), expires_in=step.expires_in
    )
    return Response(
        answer.model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED,
        media_type="application/json",
    )
