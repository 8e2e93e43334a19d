"""The account mails, composed by the sender just before their first attempt: the
account looked up by the address, a single-use token issued, the templates filled.

Composing here rather than in the request keeps a request for an unknown address
exactly as costly as one for a known address (it only queues a row), and the
token is created in the transaction that stores the mail carrying it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens
from app.config import Settings
from app.mail.render import RenderedMail, render_mail
from app.models import User, utcnow

# The mails the sender composes itself (looking the account up by address).
Compose = Literal["reset", "verify"]
NO_ACCOUNT = "no active account has this address"
ALREADY_VERIFIED = "the address is already verified"


def link(settings: Settings, page: str, token: str) -> str:
    """The page on DOMAIN, the token in the fragment: browsers never send a
    fragment to a server, so the token is in no access log and no Referer."""
    return f"https://{settings.DOMAIN}/{page}#token={token}"


def for_humans(duration: timedelta) -> str:
    """`30 minutes`, `2 hours`, `2 days`: the largest whole unit."""
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@dataclass(frozen=True)
class AccountMail:
    template: str  # under app/mail/templates/email/
    page: str  # the page on DOMAIN its link opens
    lifetime: Callable[[Settings], timedelta]


MAILS: dict[str, AccountMail] = {
    "reset": AccountMail("reset_password", "reset-password", lambda s: s.PASSWORD_RESET_TTL),
    "verify": AccountMail("verify_email", "verify-email", lambda s: s.EMAIL_VERIFY_TTL),
}


async def compose(
    *, db: AsyncSession, settings: Settings, purpose: str | None, recipient: str
) -> RenderedMail | str:
    """The mail for `recipient`, or why none goes out. Issues the token (voiding
    the previous ones of its purpose); the caller commits."""
    user = (await db.exec(select(User).where(col(User.email) == recipient))).one_or_none()
    if user is None or not user.is_active:
        return NO_ACCOUNT
    assert user.id is not None
    if purpose not in MAILS:
        return f"unknown mail {purpose!r}"
    if purpose == "verify" and user.is_verified:
        return ALREADY_VERIFIED
    mail, lifetime = MAILS[purpose], MAILS[purpose].lifetime(settings)
    token = await one_time_tokens.issue(
        db=db,
        user_id=user.id,
        purpose="reset" if purpose == "reset" else "verify",
        email=recipient,
        lifetime=lifetime,
        now=utcnow(),
    )
    return render_mail(
        mail.template,
        project=settings.PROJECT_NAME,
        email=recipient,
        link=link(settings, mail.page, token),
        valid_for=for_humans(lifetime),
    )


# --- Mails composed in the request that causes them -----------------------------
# A link to the new address and a notice to the old one on an email change, and
# the notices of a password change or reset: the account is known, so nothing is
# hidden by composing here, and the link's token is stored in the same transaction.


def notice(settings: Settings, template: str, email: str) -> RenderedMail:
    """A notice without a link to the account's address (password changed, reset)."""
    return render_mail(template, project=settings.PROJECT_NAME, email=email)


async def email_change_mails(
    *, db: AsyncSession, settings: Settings, user_id: int, old: str, new: str
) -> tuple[RenderedMail, RenderedMail]:
    """The link that makes `new` the address (to `new`), and the notice to `old`
    with its "this wasn't me" link. Issues both tokens; the caller commits. A new
    confirmation link voids the previous one; each change's undo link stays valid."""
    now = utcnow()
    confirm_for, undo_for = settings.EMAIL_VERIFY_TTL, settings.EMAIL_CHANGE_UNDO_TTL
    confirm = await one_time_tokens.issue(
        db=db, user_id=user_id, purpose="email_change", email=new, lifetime=confirm_for, now=now
    )
    undo = await one_time_tokens.issue(
        db=db,
        user_id=user_id,
        purpose="email_undo",
        email=old,
        lifetime=undo_for,
        now=now,
        void_previous=False,
    )
    project = settings.PROJECT_NAME
    return (
        render_mail(
            "confirm_email_change",
            project=project,
            email=new,
            link=link(settings, "verify-email", confirm),
            valid_for=for_humans(confirm_for),
        ),
        render_mail(
            "notice_email_change",
            project=project,
            email=old,
            new_email=new,
            link=link(settings, "secure-account", undo),
            valid_for=for_humans(undo_for),
        ),
    )
