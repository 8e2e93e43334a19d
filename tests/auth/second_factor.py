"""A second factor, for the tests: the clock TOTP codes are checked at, set and
moved by hand (so a test never races a 30-second step), the codes of a secret
at it, and the setup, login and second step as a client makes them."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.auth import totp
from tests.conftest import PASSWORD, bearer

TOTP_PATH = "/api/auth/totp"


@dataclass
class TotpClock:
    """The moment the app checks codes at (app/auth/totp.py `clock`): the middle
    of a step, so a code of this step is this step's whatever the real time."""

    now: datetime

    @property
    def step(self) -> int:
        return totp.step_at(self.now)

    def advance(self, steps: int = 1) -> None:
        self.now += timedelta(seconds=totp.STEP_SECONDS * steps)

    def code(self, secret: str, *, offset: int = 0) -> str:
        """The code of the secret for this step (or one `offset` steps away)."""
        return totp.code_at(secret, self.step + offset)


@dataclass(frozen=True)
class Enabled:
    """An account whose second factor is on: its secret and recovery codes."""

    secret: str
    recovery_codes: list[str]


async def set_up(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.post(f"{TOTP_PATH}/setup", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def enable(client: httpx.AsyncClient, token: str, clock: TotpClock) -> Enabled:
    """Set up and confirm with this step's code; then the clock moves on a step,
    so the next code is one the app has not seen."""
    secret = (await set_up(client, token))["secret"]
    response = await client.post(
        f"{TOTP_PATH}/confirm", json={"code": clock.code(secret)}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    clock.advance()
    return Enabled(secret=secret, recovery_codes=response.json()["recovery_codes"])


async def password_login(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/api/token/", data={"username": email, "password": password})


async def challenge_for(client: httpx.AsyncClient, email: str = "ada@example.com") -> str:
    """The challenge a right password gets from an account with a second factor."""
    response = await password_login(client, email)
    assert response.status_code == 202, response.text
    challenge: str = response.json()["challenge"]
    return challenge


async def second_step(client: httpx.AsyncClient, challenge: str, code: str) -> httpx.Response:
    return await client.post(
        "/api/token/second-factor", json={"challenge": challenge, "code": code}
    )
