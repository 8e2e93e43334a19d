"""How a user proves who they are: a password today; later an OIDC callback, a
passkey assertion, a second factor.

A proof only answers *who*: it never opens a session, sets a cookie or reads a
request. The sign-in (app/auth/service.py `sign_in`) throttles any proof, checks
the account (active, verified) and opens the session; the transports
(app/auth/transports.py, app/auth/cookies.py) carry its tokens. A new way to
sign in is a new class here with the two methods of `Proof`, and a route that
builds it and calls `sign_in`.
"""

from dataclasses import dataclass
from typing import ClassVar, Never, Protocol, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import passwords
from app.config import Settings
from app.exceptions import InvalidCredentials
from app.models import User
from app.schema.users import normalize_email
from app.services import users as users_service


@dataclass(frozen=True, slots=True)
class Claim:
    """Who a sign-in says it is, before its proof is checked: the identity its
    attempts are throttled under (a password's normalised email; an OIDC
    issuer and subject; a passkey's credential id), and the account that
    identity names, if any."""

    identity: str
    user: User | None


@dataclass(frozen=True, slots=True)
class Proven:
    """The proof holds: this is the user. A session may open."""

    user: User


@dataclass(frozen=True, slots=True)
class SecondStepRequired:
    """The proof holds, but the account asks for another step (a second factor)
    before a session opens: no session, no tokens. `methods` names the steps it
    accepts; the step is a proof of its own, throttled as any other."""

    user: User
    methods: tuple[str, ...]


# What a proof may answer besides Proven: Never for one that is always enough.
StepT_co = TypeVar("StepT_co", bound=SecondStepRequired, covariant=True)


class Proof(Protocol[StepT_co]):
    # How the user signs in, as the audit trail records it ("password", …).
    method: ClassVar[str]

    async def claim(self, db: AsyncSession) -> Claim:
        """The identity the proof names and its account, read from the database
        (the caller commits)."""
        ...

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven | StepT_co:
        """Check the proof, with no database connection held. A failure, an
        unknown account included, is InvalidCredentials, in the same time."""
        ...


@dataclass(frozen=True, slots=True)
class PasswordProof(Proof[Never]):
    """An email and its password. An unknown email costs a bcrypt check too
    (against a dummy hash), so it answers as a wrong password does, as late."""

    method: ClassVar[str] = "password"
    email: str
    password: str

    async def claim(self, db: AsyncSession) -> Claim:
        email = normalize_email(self.email)
        user = await users_service.find_by_email(db=db, normalized_email=email)
        return Claim(identity=email, user=user)

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven:
        if claim.user is None:
            await passwords.verify_against_dummy(self.password, settings=settings)
            raise InvalidCredentials()
        if not await passwords.verify_password(
            self.password, claim.user.hashed_password, settings=settings
        ):
            raise InvalidCredentials()
        return Proven(user=claim.user)
