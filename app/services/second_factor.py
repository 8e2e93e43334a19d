"""The second factor: a TOTP authenticator set up, confirmed, disabled; its
recovery codes; and, for a login's second step (app/auth/proofs.py), what a
presented challenge names and what a right code spends.

A code is accepted once. A TOTP code moves the credential's `last_used_step`
forward and a recovery code is marked used, each by a conditional UPDATE: of two
requests with the same code, whichever commits first wins and the other finds it
spent. Guesses by a session holder (confirm, disable, new recovery codes) are
throttled like guesses of the current password; a login's are counted by the
login throttle and by its challenge.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, exists, insert, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import login_challenges, recovery_codes, throttle, totp
from app.config import Settings
from app.exceptions import (
    NoSecondFactor,
    SecondFactorEnabled,
    TooManyCodeGuesses,
    WrongSecondFactorCode,
)
from app.models import LoginChallenge, RecoveryCode, TotpCredential, User, utcnow
from app.policy import Viewer
from app.schema.audit import EventType
from app.schema.second_factor import RecoveryCodesOut, TotpSetup, TotpStatus
from app.services import audit

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
# What a login of an account with a confirmed authenticator asks for next.
METHODS = (TOTP, RECOVERY_CODE)
_CONFIRMED = col(TotpCredential.confirmed_at).is_not(None)


# --- Reading -------------------------------------------------------------------------


async def second_steps_of(*, db: AsyncSession, user_id: int) -> tuple[str, ...]:
    """The second steps a login of this account must take: none, or METHODS."""
    enabled = (
        await db.exec(select(exists().where(col(TotpCredential.user_id) == user_id, _CONFIRMED)))
    ).one()
    return METHODS if enabled else ()


async def status(*, db: AsyncSession, viewer: Viewer) -> TotpStatus:
    enabled = bool(await second_steps_of(db=db, user_id=viewer.id))
    left = await _unused_codes(db=db, user_id=viewer.id) if enabled else {}
    return TotpStatus(enabled=enabled, recovery_codes_left=len(left))


async def _unused_codes(*, db: AsyncSession, user_id: int) -> dict[str, int]:
    """The account's unused recovery codes: hash → id."""
    rows = await db.exec(
        select(col(RecoveryCode.code_hash), col(RecoveryCode.id)).where(
            col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None)
        )
    )
    return {code_hash: code_id for code_hash, code_id in rows.all() if code_id is not None}


# --- Spending a code (once) ----------------------------------------------------------


async def _advance_step(*, db: AsyncSession, user_id: int, step: int) -> bool:
    """Record `step` as the last one accepted, unless it (or a later one) was."""
    advanced = await db.exec(
        update(TotpCredential)
        .where(col(TotpCredential.user_id) == user_id, col(TotpCredential.last_used_step) < step)
        .values(last_used_step=step)
        .returning(col(TotpCredential.user_id))
    )
    return advanced.scalar_one_or_none() is not None


async def _use_recovery_code(*, db: AsyncSession, user_id: int, code_id: int) -> bool:
    used = await db.exec(
        update(RecoveryCode)
        .where(
            col(RecoveryCode.id) == code_id,
            col(RecoveryCode.user_id) == user_id,
            col(RecoveryCode.used_at).is_(None),
        )
        .values(used_at=utcnow())
        .returning(col(RecoveryCode.id))
    )
    return used.scalar_one_or_none() is not None


@dataclass(frozen=True, slots=True)
class TotpCodeUse:
    """A login's right TOTP code: spends its challenge and its time step."""

    challenge_id: uuid.UUID
    user_id: int
    step: int

    async def spend(self, db: AsyncSession) -> bool:
        return await login_challenges.spend(
            db=db, challenge_id=self.challenge_id, now=utcnow()
        ) and await _advance_step(db=db, user_id=self.user_id, step=self.step)


@dataclass(frozen=True, slots=True)
class RecoveryCodeUse:
    """A login's right recovery code: spends its challenge and the code."""

    challenge_id: uuid.UUID
    user_id: int
    code_id: int

    async def spend(self, db: AsyncSession) -> bool:
        return await login_challenges.spend(
            db=db, challenge_id=self.challenge_id, now=utcnow()
        ) and await _use_recovery_code(db=db, user_id=self.user_id, code_id=self.code_id)


# --- A login's second step -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveChallenge:
    """A live challenge, its guess counted, with what the account's factors hold:
    enough for the proof to check a code with no query."""

    challenge_id: uuid.UUID
    user: User
    encrypted_secret: str
    last_used_step: int
    # Unused recovery codes: hash → id.
    recovery_codes: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class PresentedChallenge:
    """The account a challenge names (None: no such challenge), and the step to
    check if the challenge can still be used (None: spent, expired, out of
    guesses, voided by a change of the account, or its second factor is gone)."""

    user: User | None
    live: LiveChallenge | None


async def present_challenge(*, db: AsyncSession, challenge: str) -> PresentedChallenge:
    """Count a guess against the challenge and read what its code is checked
    against; the caller commits (with the login throttle's count) before checking."""
    presented = await login_challenges.present(db=db, token=challenge, now=utcnow())
    if presented is None:
        return PresentedChallenge(user=None, live=None)
    user = await db.get(User, presented.user_id)
    if user is None:
        return PresentedChallenge(user=None, live=None)
    credential = await db.get(TotpCredential, presented.user_id)
    if (
        not presented.live
        or presented.session_epoch != user.session_epoch
        or credential is None
        or credential.confirmed_at is None
    ):
        return PresentedChallenge(user=user, live=None)
    return PresentedChallenge(
        user=user,
        live=LiveChallenge(
            challenge_id=presented.id,
            user=user,
            encrypted_secret=credential.encrypted_secret,
            last_used_step=credential.last_used_step,
            recovery_codes=await _unused_codes(db=db, user_id=presented.user_id),
        ),
    )


# --- Setting up, confirming, disabling -----------------------------------------------


async def set_up(*, db: AsyncSession, settings: Settings, viewer: Viewer) -> TotpSetup:
    """A new secret for the viewer, pending until confirmed (replacing a pending
    one); 409 if a second factor is already enabled."""
    secret = totp.new_secret()
    encrypted = totp.encrypt(settings.totp_cipher, secret)
    now = utcnow()
    replaced = await db.exec(
        upsert(TotpCredential)
        .values(user_id=viewer.id, encrypted_secret=encrypted, created_at=now)
        .on_conflict_do_update(
            index_elements=[col(TotpCredential.user_id)],
            set_={"encrypted_secret": encrypted, "last_used_step": 0, "created_at": now},
            where=col(TotpCredential.confirmed_at).is_(None),
        )
        .returning(col(TotpCredential.user_id))
    )
    if replaced.scalar_one_or_none() is None:
        await db.rollback()
        raise SecondFactorEnabled()
    user = await db.get(User, viewer.id)
    assert user is not None  # the viewer's own row: their session is live
    await db.commit()
    uri = totp.provisioning_uri(
        secret, account=user.email, issuer=settings.TOTP_ISSUER or settings.PROJECT_NAME
    )
    return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))


async def _checked_guess(
    *, db: AsyncSession, settings: Settings, viewer: Viewer
) -> throttle.Attempt:
    """Count a code guess by the viewer's session (429 past the limit); committed
    before the code is checked."""
    attempt = await throttle.reserve(
        db=db,
        limits=throttle.second_factor_limits(settings=settings, user_id=viewer.id),
        error=TooManyCodeGuesses,
    )
    await db.commit()
    return attempt


async def _new_recovery_codes(*, db: AsyncSession, user_id: int) -> RecoveryCodesOut:
    """Ten new codes for the account, the previous ones deleted; the caller commits."""
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
    codes = recovery_codes.new_codes()
    await db.exec(
        insert(RecoveryCode).values(
            [{"user_id": user_id, "code_hash": recovery_codes.digest(code)} for code in codes]
        )
    )
    return RecoveryCodesOut(recovery_codes=codes)


async def confirm(
    *, db: AsyncSession, settings: Settings, viewer: Viewer, code: str
) -> RecoveryCodesOut:
    """Enable the pending authenticator with a current code of it: logins ask for
    a second factor from now on. Answers the ten recovery codes, once."""
    credential = await db.get(TotpCredential, viewer.id)
    if credential is None or credential.confirmed_at is not None:
        raise NoSecondFactor("No TOTP setup is pending: start one with POST /api/auth/totp/setup")
    attempt = await _checked_guess(db=db, settings=settings, viewer=viewer)
    secret = totp.decrypt(settings.totp_cipher, credential.encrypted_secret)
    step = totp.accepted_step(secret, code, after_step=credential.last_used_step)
    if step is None:
        raise WrongSecondFactorCode()
    confirmed = await db.exec(
        update(TotpCredential)
        .where(
            col(TotpCredential.user_id) == viewer.id,
            col(TotpCredential.confirmed_at).is_(None),
            # Not a secret a concurrent setup put in its place since.
            col(TotpCredential.encrypted_secret) == credential.encrypted_secret,
            col(TotpCredential.last_used_step) < step,
        )
        .values(confirmed_at=utcnow(), last_used_step=step)
        .returning(col(TotpCredential.user_id))
    )
    if confirmed.scalar_one_or_none() is None:
        await db.rollback()
        raise WrongSecondFactorCode()
    codes = await _new_recovery_codes(db=db, user_id=viewer.id)
    await throttle.forgive(db=db, attempt=attempt)
    audit.record(db, EventType.MFA_ENABLED, actor=viewer, target=viewer.id)
    await db.commit()
    return codes


async def _enabled_credential(*, db: AsyncSession, user_id: int) -> TotpCredential:
    credential = await db.get(TotpCredential, user_id)
    if credential is None or credential.confirmed_at is None:
        raise NoSecondFactor("No second factor is enabled")
    return credential


async def _spend_code(
    *, db: AsyncSession, settings: Settings, credential: TotpCredential, code: str
) -> str:
    """Spend a code of the enabled second factor: a current TOTP code or an unused
    recovery code. Its method; WrongSecondFactorCode if neither; the caller commits."""
    user_id = credential.user_id
    if recovery_codes.looks_like_one(code):
        code_id = (await _unused_codes(db=db, user_id=user_id)).get(recovery_codes.digest(code))
        if code_id is not None and await _use_recovery_code(
            db=db, user_id=user_id, code_id=code_id
        ):
            return RECOVERY_CODE
        raise WrongSecondFactorCode()
    secret = totp.decrypt(settings.totp_cipher, credential.encrypted_secret)
    step = totp.accepted_step(secret, code, after_step=credential.last_used_step)
    if step is None or not await _advance_step(db=db, user_id=user_id, step=step):
        raise WrongSecondFactorCode()
    return TOTP


async def disable(*, db: AsyncSession, settings: Settings, viewer: Viewer, code: str) -> None:
    """Turn the second factor off, with a code of it: the authenticator, its
    recovery codes and any login waiting for a second step are gone."""
    credential = await _enabled_credential(db=db, user_id=viewer.id)
    attempt = await _checked_guess(db=db, settings=settings, viewer=viewer)
    method = await _spend_code(db=db, settings=settings, credential=credential, code=code)
    await db.exec(delete(TotpCredential).where(col(TotpCredential.user_id) == viewer.id))
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == viewer.id))
    await db.exec(delete(LoginChallenge).where(col(LoginChallenge.user_id) == viewer.id))
    await throttle.forgive(db=db, attempt=attempt)
    audit.record(
        db, EventType.MFA_DISABLED, actor=viewer, target=viewer.id, details={"method": method}
    )
    await db.commit()


async def regenerate_recovery_codes(
    *, db: AsyncSession, settings: Settings, viewer: Viewer, code: str
) -> RecoveryCodesOut:
    """Ten new recovery codes, with a code of the second factor; the old ones are void."""
    credential = await _enabled_credential(db=db, user_id=viewer.id)
    attempt = await _checked_guess(db=db, settings=settings, viewer=viewer)
    method = await _spend_code(db=db, settings=settings, credential=credential, code=code)
    codes = await _new_recovery_codes(db=db, user_id=viewer.id)
    await throttle.forgive(db=db, attempt=attempt)
    audit.record(
        db,
        EventType.MFA_RECOVERY_CODES_REGENERATED,
        actor=viewer,
        target=viewer.id,
        details={"method": method},
    )
    await db.commit()
    return codes


# --- Key rotation and the sweep ------------------------------------------------------


async def reencrypt_secrets(*, db: AsyncSession, settings: Settings) -> int:
    """Encrypt every stored secret again with the first TOTP_ENCRYPTION_KEYS key
    (after a new one was put first), so the old key can be dropped. A secret
    replaced meanwhile (a new setup) is left as it is: it is under the new key
    already. How many were re-encrypted; commits."""
    rows = (
        await db.exec(select(col(TotpCredential.user_id), col(TotpCredential.encrypted_secret)))
    ).all()
    done = 0
    for user_id, encrypted in rows:
        again = totp.reencrypt(settings.totp_cipher, encrypted)
        changed = await db.exec(
            update(TotpCredential)
            .where(
                col(TotpCredential.user_id) == user_id,
                col(TotpCredential.encrypted_secret) == encrypted,
            )
            .values(encrypted_secret=again)
        )
        done += changed.rowcount
    await db.commit()
    return done
