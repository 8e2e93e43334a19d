"""Account mail: the mails the app sends an account, and the links in them.

- Password recovery: anyone asks by address (`request_account_mail`), the sender
  composes the mail (`compose`), its link sets a new password (`reset_password`).
- Email verification: registration and an admin's change of address queue the
  mail (`queue_verification`), anyone may ask for it again by address; its link
  proves the address (`verify_email`).
- Email change: a user's own change (app/services/users.update_me) mails a link
  to the new address and a notice with a "this wasn't me" link to the old one
  (`queue_email_change`); the first makes the address the account's
  (`verify_email`), the second takes the account back (`secure_account`).
- Notices: a password change or reset tells the account's address
  (`queue_password_notice`), and so does a sign-in from a device the account
  has not used before (`queue_sign_in_notice`).

Mails go through the outbox (app/mail/outbox.py): a request only queues a row in
its own transaction, commits, then wakes the senders. The links' tokens are
app/auth/one_time_tokens.py's (single use, one purpose, bound to the address).
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast, get_args

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens, passwords, throttle
from app.auth.one_time_tokens import Purpose
from app.auth.sessions import Client, end_all_sessions
from app.config import Settings
from app.database.db import flush_unless_taken
from app.exceptions import EmailTaken, TooManyAttempts, TooManyMailRequests
from app.mail import outbox
from app.mail.render import RenderedMail, render_mail
from app.models import OneTimeToken, User, utcnow
from app.schema.audit import EventType
from app.schema.users import normalize_email
from app.services import audit, take_back

# The mails anyone may ask for by address: the sender composes them.
Compose = Literal["reset", "verify"]
# What a password notice (no link in it) tells the account's address happened.
PasswordEvent = Literal["changed", "reset"]
NO_ACCOUNT = "no active account has this address"
ALREADY_VERIFIED = "the address is already verified"


# --- The mails with a link --------------------------------------------------------


@dataclass(frozen=True)
class LinkMail:
    template: str  # under app/mail/templates/email/
    page: str  # the page on DOMAIN its link opens (app/routes/account_mail.py)
    lifetime: Callable[[Settings], timedelta]


# One mail per token purpose.
MAILS: dict[Purpose, LinkMail] = {
    "reset": LinkMail("reset_password", "reset-password", lambda s: s.PASSWORD_RESET_TTL),
    "verify": LinkMail("verify_email", "verify-email", lambda s: s.EMAIL_VERIFY_TTL),
    "email_change": LinkMail("confirm_email_change", "verify-email", lambda s: s.EMAIL_VERIFY_TTL),
    "email_undo": LinkMail(
        "notice_email_change", "secure-account", lambda s: s.EMAIL_CHANGE_UNDO_TTL
    ),
}


def _link(settings: Settings, page: str, token: str) -> str:
    """The page on DOMAIN, the token in the fragment: browsers never send a
    fragment to a server, so the token is in no access log and no Referer."""
    return f"https://{settings.DOMAIN}/{page}#token={token}"


def _for_humans(duration: timedelta) -> str:
    """`30 minutes`, `2 hours`, `2 days`: the largest whole unit."""
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


async def _link_mail(
    *,
    db: AsyncSession,
    settings: Settings,
    purpose: Purpose,
    user_id: int,
    email: str,
    now: datetime,
    void_previous: bool = True,
    **values: str,
) -> RenderedMail:
    """Issue a token of `purpose` for `email` and render its mail, the link in
    it; the caller commits. A new token voids the previous ones of its purpose,
    unless told not to."""
    mail, lifetime = MAILS[purpose], MAILS[purpose].lifetime(settings)
    token = await one_time_tokens.issue(
        db=db,
        user_id=user_id,
        purpose=purpose,
        email=email,
        lifetime=lifetime,
        now=now,
        void_previous=void_previous,
    )
    return render_mail(
        mail.template,
        project=settings.PROJECT_NAME,
        email=email,
        link=_link(settings, mail.page, token),
        valid_for=_for_humans(lifetime),
        **values,
    )


async def _account_at(*, db: AsyncSession, email: str) -> User | None:
    """The account that has this (normalised) address, active or not."""
    return (await db.exec(select(User).where(col(User.email) == email))).one_or_none()


# --- The per-address limit --------------------------------------------------------
# Every mail to an address counts against its ceiling (MAIL_PER_ADDRESS_MAX per
# MAIL_REQUEST_WINDOW), whatever flow sends it, so no flow is a way around it.
# What happens at the ceiling depends on who asked:
# - anyone asking by address, or a signed-in user asking for an email change: 429;
# - a mail an action sends on its own (registration, an admin's change): not
#   sent (the account can ask again later, POST /api/auth/verify-email/resend);
# - a notice to the account's own address: counted, and sent anyway (only the
#   password's holder can cause one, and it must not be suppressible).
# Addresses are already normalised (app/schema/users.normalize_email).


async def reserve_email_change(
    *, db: AsyncSession, settings: Settings, email: str, client: str
) -> None:
    """Count the link a signed-in user asks to have mailed to a new address, or
    TooManyMailRequests (nothing counted then). The caller commits."""
    await throttle.reserve(
        db=db,
        limits=[
            throttle.mail_address_limit(settings=settings, email=email),
            throttle.mail_client_limit(settings=settings, client=client),
        ],
        error=TooManyMailRequests,
    )


async def _has_room(*, db: AsyncSession, settings: Settings, email: str) -> bool:
    """Count a mail an action sends on its own if the address has room for it;
    False (nothing counted, the caller's transaction intact) if it has none."""
    try:
        async with db.begin_nested():
            await throttle.reserve(
                db=db, limits=[throttle.mail_address_limit(settings=settings, email=email)]
            )
    except TooManyAttempts:
        return False
    return True


async def _charge(*, db: AsyncSession, settings: Settings, email: str) -> None:
    """Count a notice to the account's own address; it goes out whatever the count."""
    await throttle.charge(
        db=db, limits=[throttle.mail_address_limit(settings=settings, email=email)]
    )


# --- Mails another service's request queues ---------------------------------------
# Registration, a change of address, a password change: the account is known, so
# nothing is hidden by composing in the request, and a link's token is stored in
# the transaction that queues its mail. The caller commits, then calls
# outbox.wake_senders().


async def queue_verification(*, db: AsyncSession, settings: Settings, email: str) -> None:
    """The verification mail an action sends on its own (registration, an admin's
    change of address), if the address has room for it; else none."""
    if await _has_room(db=db, settings=settings, email=email):
        outbox.enqueue(db=db, recipient=email, purpose="verify")


async def queue_email_change(
    *, db: AsyncSession, settings: Settings, user_id: int, old: str, new: str
) -> None:
    """The link that makes `new` the address (to `new`, counted already by
    reserve_email_change), and the notice to `old` with its "this wasn't me"
    link. A new confirmation link voids the previous one; each change's undo
    link stays valid."""
    now = utcnow()
    confirm = await _link_mail(
        db=db, settings=settings, purpose="email_change", user_id=user_id, email=new, now=now
    )
    undo = await _link_mail(
        db=db,
        settings=settings,
        purpose="email_undo",
        user_id=user_id,
        email=old,
        now=now,
        void_previous=False,
        new_email=new,
    )
    outbox.enqueue_mail(db=db, recipient=new, mail=confirm)
    outbox.enqueue_mail(db=db, recipient=old, mail=undo)
    await _charge(db=db, settings=settings, email=old)


async def queue_password_notice(
    *, db: AsyncSession, settings: Settings, email: str, event: PasswordEvent
) -> None:
    """Tell the account's own address that its password was changed or reset."""
    mail = render_mail("notice_password", project=settings.PROJECT_NAME, email=email, what=event)
    outbox.enqueue_mail(db=db, recipient=email, mail=mail)
    await _charge(db=db, settings=settings, email=email)


async def queue_sign_in_notice(
    *, db: AsyncSession, settings: Settings, user: User, client: Client
) -> None:
    """Tell the account's address it was signed in to from a new device, if the
    address has room for one more mail (a burst of sign-ins is not a burst of
    mails: the address's ceiling bounds them)."""
    if not await _has_room(db=db, settings=settings, email=user.email):
        return
    mail = render_mail(
        "notice_sign_in",
        project=settings.PROJECT_NAME,
        email=user.email,
        when=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        address=client.address,
        agent=client.user_agent or "unknown",
    )
    outbox.enqueue_mail(db=db, recipient=user.email, mail=mail)


async def queue_oidc_linked_notice(
    *, db: AsyncSession, settings: Settings, user: User, provider: str
) -> None:
    """Tell the account's address that an OpenID provider's account was linked to
    it (app/services/oidc_accounts.py), if the address has room for one more mail."""
    if not await _has_room(db=db, settings=settings, email=user.email):
        return
    mail = render_mail(
        "notice_oidc_linked",
        project=settings.PROJECT_NAME,
        email=user.email,
        provider=provider,
        when=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
    )
    outbox.enqueue_mail(db=db, recipient=user.email, mail=mail)
    await _charge(db=db, settings=settings, email=user.email)


# --- Mails anyone may ask for by address ------------------------------------------
# Asking answers the same, in the same time, for every address: the request only
# counts itself against the limits and queues a row; the sender composes the mail
# just before its first attempt (`compose`), looking the account up then. The
# token is created in the transaction that stores the mail carrying it.


async def request_account_mail(
    *, db: AsyncSession, settings: Settings, purpose: Compose, email: str, client: Client
) -> None:
    """Someone asks for an account mail for an address: count the request against
    the limits (this client's share of the address, the address's ceiling over
    every flow, the client's), queue the mail, wake the sender."""
    email = normalize_email(email)
    await throttle.reserve(
        db=db,
        limits=throttle.mail_request_limits(settings=settings, email=email, client=client.address),
        error=TooManyMailRequests,
    )
    outbox.enqueue(db=db, recipient=email, purpose=purpose)
    await db.commit()
    outbox.wake_senders()


async def compose(
    *, db: AsyncSession, settings: Settings, purpose: str | None, recipient: str
) -> RenderedMail | str:
    """The mail for `recipient`, or why none goes out (the outbox's Composer).
    Issues the token (voiding the previous ones of its purpose); the sender commits."""
    user = await _account_at(db=db, email=recipient)
    if user is None or not user.is_active:
        return NO_ACCOUNT
    assert user.id is not None
    if purpose not in get_args(Compose):
        return f"unknown mail {purpose!r}"
    if purpose == "verify" and user.is_verified:
        return ALREADY_VERIFIED
    return await _link_mail(
        db=db,
        settings=settings,
        purpose=cast(Compose, purpose),
        user_id=user.id,
        email=recipient,
        now=utcnow(),
    )


# --- Spending the links -----------------------------------------------------------
# Each ends every session of the account (device cookies with them), in the
# transaction that spends the link.


async def _hash_if_usable(
    *,
    db: AsyncSession,
    settings: Settings,
    token: str,
    purpose: Purpose,
    password: str,
    now: datetime,
) -> str:
    """The hash of `password`, once the token is found usable: a forged one costs
    no bcrypt. The caller spends the token after, locked: of two uses at once one wins."""
    await one_time_tokens.usable(db=db, token=token, purpose=purpose, now=now)
    await db.rollback()  # no connection held while bcrypt runs
    return await passwords.hash_password(password, settings=settings)


async def reset_password(
    *, db: AsyncSession, settings: Settings, token: str, new_password: str
) -> None:
    """Spend the token: set the password, void the other reset links, end every
    session, count the address as verified (the link reached it), and queue a
    notice to it, in one transaction."""
    hashed = await _hash_if_usable(
        db=db, settings=settings, token=token, purpose="reset", password=new_password, now=utcnow()
    )
    now = utcnow()
    user = await one_time_tokens.spend(db=db, token=token, purpose="reset", now=now)
    assert user.id is not None
    user.hashed_password = hashed
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await db.flush()
    await end_all_sessions(db=db, user_id=user.id)
    audit.record(db, EventType.PASSWORD_RESET, actor=None, target=user.id)
    await queue_password_notice(db=db, settings=settings, email=user.email, event="reset")
    await db.commit()
    outbox.wake_senders()


async def verify_email(*, db: AsyncSession, token: str) -> None:
    """Spend the token: a verification link marks its address verified, if it is
    still the account's; an email-change link makes its address the account's,
    verified, and voids the account's other outstanding links. Either way every
    session opened before ends: whoever registered the address, or re-addressed
    an account to it, before its owner followed the link keeps no session in an
    account the owner just proved is theirs (pre-account hijacking)."""
    now = utcnow()
    row, user = await one_time_tokens.take(
        db=db, token=token, purposes=("verify", "email_change"), now=now
    )
    assert user.id is not None
    if row.purpose == "email_change":
        changed = {"from": user.email, "to": row.email}
        audit.record(db, EventType.EMAIL_CHANGED, actor=None, target=user.id, details=changed)
        user.email = row.email
        await one_time_tokens.void_links(db=db, user_id=user.id, now=now)
    else:
        await one_time_tokens.void(db=db, user_id=user.id, purpose="verify", now=now)
        audit.record(
            db, EventType.EMAIL_VERIFIED, actor=None, target=user.id, details={"email": user.email}
        )
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await flush_unless_taken(db, EmailTaken)  # another account took the address meanwhile
    await end_all_sessions(db=db, user_id=user.id)
    await db.commit()


async def secure_account(*, db: AsyncSession, settings: Settings, token: str) -> None:
    """ "This wasn't me": spend the undo link an email change mailed to the old
    address, and take the account back from whoever changed it with a stolen
    session and password. Every session ends; every outstanding link is voided
    (the pending change with it); the address the link was mailed to becomes the
    account's again (verified: the link reached it) unless another account took
    it meanwhile; and the password is voided (replaced by a random one nobody
    knows), since whoever made the change knew it: the owner sets a new one
    through password recovery, which now mails the owner's address. Every other
    way in goes too (second factor, API keys, passkeys, provider links: any may
    be the thief's; app/services/take_back.py).

    The earliest change's link wins: it voids the undo links issued after it
    (those of later changes, mailed to addresses the account had only since),
    never those issued before."""
    now = utcnow()
    unknown = await _hash_if_usable(
        db=db,
        settings=settings,
        token=token,
        purpose="email_undo",
        password=secrets.token_urlsafe(32),
        now=now,
    )
    row, user = await one_time_tokens.take(db=db, token=token, purposes=("email_undo",), now=now)
    assert user.id is not None
    await one_time_tokens.void_links(db=db, user_id=user.id, now=now)
    await db.exec(
        update(OneTimeToken)
        .where(
            col(OneTimeToken.user_id) == user.id,
            col(OneTimeToken.purpose) == "email_undo",
            col(OneTimeToken.created_at) >= row.created_at,
            col(OneTimeToken.used_at).is_(None),
            col(OneTimeToken.voided_at).is_(None),
        )
        .values(voided_at=now)
    )
    restored = {"from": user.email, "to": user.email}
    if user.email != row.email and await _account_at(db=db, email=row.email) is None:
        restored["to"] = row.email
        user.email, user.is_verified = row.email, True
    audit.record(db, EventType.ACCOUNT_SECURED, actor=None, target=user.id, details=restored)
    user.hashed_password = unknown
    user.updated_at = now
    db.add(user)
    await db.flush()
    await take_back.remove_every_way_in(db=db, user_id=user.id)
    await db.commit()
