"""The login seam: any proof goes through the one sign-in, which throttles it
and may hear 'a second step is needed' without opening a session."""

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import service as auth_service
from app.auth.proofs import Claim, Proof, Proven, SecondStepRequired
from app.auth.sessions import Client
from app.config import Settings
from app.exceptions import InvalidCredentials, TooManyAttempts
from app.services import users as users_service
from tests.conftest import CLIENT_ADDRESS, count_rows

CLIENT = Client.seen(address=CLIENT_ADDRESS, user_agent="a test")


@dataclass
class SecondFactorProof(Proof[SecondStepRequired]):
    """A first factor that always holds (or always fails) and asks for a second."""

    method: ClassVar[str] = "test"
    email: str
    fails: bool = False
    checks: list[str] = field(default_factory=list)

    async def claim(self, db: AsyncSession) -> Claim:
        user = await users_service.find_by_email(db=db, normalized_email=self.email)
        return Claim(identity=self.email, user=user)

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven | SecondStepRequired:
        self.checks.append(claim.identity)
        if self.fails or claim.user is None:
            raise InvalidCredentials()
        return SecondStepRequired(user=claim.user, methods=("totp",))


async def sign_in(
    app: FastAPI, proof: SecondFactorProof
) -> auth_service.Login | SecondStepRequired:
    async with app.state.session_factory() as db:
        return await auth_service.sign_in(
            db=db, settings=app.state.settings, proof=proof, client=CLIENT
        )


async def test_a_proof_may_ask_for_a_second_step_and_no_session_opens(
    app: FastAPI, user_tokens: dict[str, Any]
) -> None:
    user_id = user_tokens["user"]["id"]
    sessions_before = await count_rows(app, "auth_sessions", user_id)
    outcome = await sign_in(app, SecondFactorProof("ada@example.com"))
    assert isinstance(outcome, SecondStepRequired)
    assert outcome.user.id == user_id
    assert outcome.methods == ("totp",)
    assert await count_rows(app, "auth_sessions", user_id) == sessions_before


async def test_the_throttle_counts_any_proof_before_it_is_checked(
    app: FastAPI, user_tokens: dict[str, Any], settings: Settings
) -> None:
    proof = SecondFactorProof("ada@example.com", fails=True)
    for _ in range(settings.LOGIN_MAX_FAILURES):
        with pytest.raises(InvalidCredentials):
            await sign_in(app, proof)
    with pytest.raises(TooManyAttempts):
        await sign_in(app, proof)
    assert len(proof.checks) == settings.LOGIN_MAX_FAILURES  # the refused one unchecked
