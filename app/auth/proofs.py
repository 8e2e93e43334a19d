"""How a user proves who they are: a password, and the second step an account
with a second factor asks for after it (a TOTP code or a recovery code, with the
login's challenge); an OpenID provider's verified ID token; a passkey's
assertion.

A proof only answers *who*: it never opens a session, sets a cookie or reads a
request. The sign-in (app/auth/service.py `sign_in`) throttles any proof, checks
the account (active, verified) and opens the session; the transports
(app/auth/transports.py, app/auth/cookies.py) carry its tokens. A new way to
sign in is a new class here with the two methods of `Proof`, and a route that
builds it and calls `sign_in`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Never, Protocol, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import oidc, passkeys, passwords, recovery_codes, totp
from app.config import Settings
from app.exceptions import InvalidCredentials, InvalidSecondStep, OidcRefused, PasskeyRefused
from app.models import User
from app.schema.users import normalize_email
from app.services import oidc_accounts
from app.services import passkeys as passkeys_service
from app.services import second_factor as second_factor_service
from app.services import users as users_service


@dataclass(frozen=True, slots=True)
class Claim:
    """Who a sign-in says it is, before its proof is checked: the identity its
    attempts are throttled under (a password's normalised email; an OIDC
    issuer and subject; a passkey's credential id), and the account that
    identity names, if any."""

    identity: str
    user: User | None
    # The steps the account asks for once this proof holds (its second factor),
    # read with the account.
    second_steps: tuple[str, ...] = ()


class SingleUse(Protocol):
    """What a proof holds only once (a second step's challenge and code), spent
    in the transaction that opens the session."""

    async def spend(self, db: AsyncSession) -> bool:
        """Spend it; False if it was spent already (a replay, or a concurrent
        twin that committed first): then no session opens."""
        ...


@dataclass(frozen=True, slots=True)
class Proven:
    """The proof holds: this is the user. A session may open."""

    user: User
    # Spent as the session opens; None when there is nothing to spend (a
    # password may be given again).
    single_use: SingleUse | None = None


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
    # What a refused proof answers (401).
    refused_with: ClassVar[type[InvalidCredentials]] = InvalidCredentials

    async def claim(self, db: AsyncSession) -> Claim:
        """The identity the proof names and its account, read from the database
        (the caller commits)."""
        ...

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven | StepT_co:
        """Check the proof, with no database connection held. A failure, an
        unknown account included, is InvalidCredentials, in the same time."""
        ...

    def refusal(self, claim: Claim) -> str:
        """Why a failed proof is refused, as the audit trail records it."""
        return "unknown_account" if claim.user is None else "wrong_password"

    def audit_details(self) -> dict[str, str]:
        """What the audit trail records of this proof beside its method."""
        return {}


@dataclass(frozen=True, slots=True)
class PasswordProof(Proof[SecondStepRequired]):
    """An email and its password. An unknown email costs a bcrypt check too
    (against a dummy hash), so it answers as a wrong password does, as late. An
    account with a second factor asks for it once the password holds."""

    method: ClassVar[str] = "password"
    email: str
    password: str

    async def claim(self, db: AsyncSession) -> Claim:
        email = normalize_email(self.email)
        user = await users_service.find_by_email(db=db, normalized_email=email)
        # Asked for an unknown email too (no account has id 0): every login costs
        # the same statements, so their number tells no account apart.
        user_id = user.id if user is not None and user.id is not None else 0
        steps = await second_factor_service.second_steps_of(db=db, user_id=user_id)
        return Claim(identity=email, user=user, second_steps=steps)

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven | SecondStepRequired:
        if claim.user is None:
            await passwords.verify_against_dummy(self.password, settings=settings)
            raise InvalidCredentials()
        if not await passwords.verify_password(
            self.password, claim.user.hashed_password, settings=settings
        ):
            raise InvalidCredentials()
        if claim.second_steps:
            return SecondStepRequired(user=claim.user, methods=claim.second_steps)
        return Proven(user=claim.user)


# The identity a challenge that names no account is throttled under: floods of
# forged challenges from one address are held to the login limits too.
UNKNOWN_CHALLENGE = "second-step:unknown-challenge"


@dataclass(frozen=True, slots=True)
class SecondStepClaim(Claim):
    """A second step's claim: the account its challenge names (its attempts are
    throttled as that account's logins), and the live challenge with what the
    code is checked against, or None if it cannot be used any more."""

    live: second_factor_service.LiveChallenge | None = None


@dataclass(frozen=True, slots=True)
class SecondStepProof(Proof[Never]):
    """The second step of a login: the challenge its first step answered, and a
    code. Presenting it counts a guess against the challenge (before the code is
    checked); a right code is spent with the challenge as the session opens, so
    it works once. `SecondStepProof.of` picks the proof the code's shape names."""

    refused_with: ClassVar[type[InvalidCredentials]] = InvalidSecondStep
    challenge: str
    code: str

    @staticmethod
    def of(challenge: str, code: str) -> "SecondStepProof":
        if recovery_codes.looks_like_one(code):
            return RecoveryCodeProof(challenge=challenge, code=code)
        return TotpProof(challenge=challenge, code=code)

    async def claim(self, db: AsyncSession) -> SecondStepClaim:
        presented = await second_factor_service.present_challenge(db=db, challenge=self.challenge)
        if presented.user is None:
            return SecondStepClaim(identity=UNKNOWN_CHALLENGE, user=None)
        return SecondStepClaim(
            identity=presented.user.email, user=presented.user, live=presented.live
        )

    def refusal(self, claim: Claim) -> str:
        if claim.user is None:
            return "unknown_challenge"
        return "wrong_second_factor" if self._live(claim) else "challenge_invalid"

    @staticmethod
    def _live(claim: Claim) -> second_factor_service.LiveChallenge | None:
        return claim.live if isinstance(claim, SecondStepClaim) else None

    def _checked(self, claim: Claim) -> second_factor_service.LiveChallenge:
        live = self._live(claim)
        if live is None:
            raise self.refused_with()
        return live


@dataclass(frozen=True, slots=True)
class TotpProof(SecondStepProof):
    """A code of the account's authenticator app, within a step of now and after
    the last one accepted."""

    method: ClassVar[str] = second_factor_service.TOTP

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven:
        live = self._checked(claim)
        secret = totp.decrypt(settings.totp_cipher, live.encrypted_secret)
        step = totp.accepted_step(secret, self.code, after_step=live.last_used_step)
        if step is None:
            raise self.refused_with()
        assert live.user.id is not None
        return Proven(
            user=live.user,
            single_use=second_factor_service.TotpCodeUse(
                challenge_id=live.challenge_id, user_id=live.user.id, step=step
            ),
        )


@dataclass(frozen=True, slots=True)
class RecoveryCodeProof(SecondStepProof):
    """One of the account's unused recovery codes (matched by its hash: the
    lookup's timing tells nothing about a code, only about its SHA-256)."""

    method: ClassVar[str] = second_factor_service.RECOVERY_CODE

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven:
        live = self._checked(claim)
        code_id = live.recovery_codes.get(recovery_codes.digest(self.code))
        if code_id is None:
            raise self.refused_with()
        assert live.user.id is not None
        return Proven(
            user=live.user,
            single_use=second_factor_service.RecoveryCodeUse(
                challenge_id=live.challenge_id, user_id=live.user.id, code_id=code_id
            ),
        )


@dataclass(frozen=True, slots=True)
class OidcClaim(Claim):
    """An OpenID sign-in's claim: its account, or why it has none."""

    refusal: str = "unknown_account"


@dataclass(frozen=True, slots=True)
class OidcProof(Proof[SecondStepRequired]):
    """An identity an OpenID provider asserted in an ID token that was verified
    before (app/auth/oidc.py: signature, issuer, audience, expiry, the flow's
    nonce), for the browser that started the flow. Its claim resolves the
    account (app/services/oidc_accounts.py: linked, created or claimed); an
    account with a second factor asks for it, as after a password."""

    method: ClassVar[str] = "oidc"
    refused_with: ClassVar[type[InvalidCredentials]] = OidcRefused
    identity: oidc.Identity
    settings: Settings

    async def claim(self, db: AsyncSession) -> OidcClaim:
        name = f"oidc:{self.identity.provider}:{self.identity.subject}"
        resolved = await oidc_accounts.resolve(
            db=db, settings=self.settings, identity=self.identity
        )
        if resolved is None:
            return OidcClaim(identity=name, user=None, refusal="oidc_email_unverified")
        assert resolved.user.id is not None
        steps = await second_factor_service.second_steps_of(db=db, user_id=resolved.user.id)
        return OidcClaim(identity=name, user=resolved.user, second_steps=steps)

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven | SecondStepRequired:
        if claim.user is None:
            raise self.refused_with()
        if claim.second_steps:
            return SecondStepRequired(user=claim.user, methods=claim.second_steps)
        return Proven(user=claim.user)

    def refusal(self, claim: Claim) -> str:
        return claim.refusal if isinstance(claim, OidcClaim) else "unknown_account"

    def audit_details(self) -> dict[str, str]:
        return {"provider": self.identity.provider}


# The identity an answer naming no passkey is throttled under: floods of made-up
# credentials from one address are held to the login limits too.
UNKNOWN_PASSKEY = "passkey:unknown-credential"


@dataclass(frozen=True, slots=True)
class PasskeyClaim(Claim):
    """A passkey sign-in's claim: the ceremony's challenge and the passkey the
    browser's answer names, with its account."""

    presented: passkeys_service.PresentedPasskey | None = None


@dataclass(frozen=True, slots=True)
class PasskeyProof(Proof[Never]):
    """The answer of `navigator.credentials.get()` to a sign-in ceremony's
    options: an assertion signed by a passkey registered here. Presenting it
    spends the ceremony (whatever follows); it holds if py_webauthn verifies it
    (app/auth/passkeys.py: the ceremony's challenge, this site's origin and
    relying party id, the user present and verified, the passkey's signature, a
    counter moving forward) and the authenticator names the passkey's account
    (its user handle). A passkey is a factor of its own and the user verified
    on the device: it is enough, whatever second factor the account has."""

    method: ClassVar[str] = "passkey"
    refused_with: ClassVar[type[InvalidCredentials]] = PasskeyRefused
    ceremony: str
    credential: Mapping[str, Any]

    async def claim(self, db: AsyncSession) -> PasskeyClaim:
        credential_id = passkeys.credential_id_of(self.credential)
        presented = await passkeys_service.present(
            db=db, ceremony=self.ceremony, credential_id=credential_id
        )
        if presented.passkey is None or credential_id is None:
            return PasskeyClaim(identity=UNKNOWN_PASSKEY, user=None, presented=presented)
        identity = f"passkey:{passkeys.b64url_encode(credential_id)}"
        return PasskeyClaim(identity=identity, user=presented.user, presented=presented)

    async def prove(self, claim: Claim, *, settings: Settings) -> Proven:
        presented = claim.presented if isinstance(claim, PasskeyClaim) else None
        if presented is None or presented.challenge is None:
            raise PasskeyRefused(
                "the ceremony is unknown, expired, already used, or not a sign-in's",
                reason="passkey_ceremony_invalid",
            )
        passkey, user = presented.passkey, presented.user
        if passkey is None or user is None:
            raise PasskeyRefused(
                "no account has this passkey (it may have been removed)", reason="unknown_passkey"
            )
        handle = passkeys.user_handle_of(self.credential)
        if handle is None or handle != passkey.user_handle:
            raise PasskeyRefused(
                "the authenticator names another account than the passkey's (its user handle)",
                reason="passkey_user_handle",
            )
        try:
            assertion = passkeys.verify_authentication(
                settings=settings,
                credential=self.credential,
                challenge=presented.challenge,
                public_key=passkey.public_key,
                sign_count=passkey.sign_count,
            )
        except passkeys.PasskeyCheckFailed as failed:
            raise PasskeyRefused(failed.detail, reason=failed.reason) from None
        return Proven(
            user=user,
            single_use=passkeys_service.PasskeyUse(
                passkey_id=passkey.id,
                sign_count=assertion.sign_count,
                backed_up=assertion.backed_up,
            ),
        )

    def refusal(self, claim: Claim) -> str:
        return "unknown_passkey"
