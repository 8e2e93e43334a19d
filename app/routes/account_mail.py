"""Account mail: the `/api/auth/…` routes that mail a single-use link and those
that spend it (password recovery, email verification, "this wasn't me"), and the
pages the mailed links open.

The pages are static HTML whose inline script reads the token from the link's
fragment (never sent to a server, so in no access log), removes it from the
address bar, and POSTs it to the API; they are served with the strict headers
of every page (app/routes/pages.py).
"""

from typing import NamedTuple

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse

from app.auth.transports import no_store
from app.dependencies import DbSession, SettingsDep, client_of
from app.exceptions import EmailTaken, InvalidLink, TooManyMailRequests, error_responses
from app.routes.pages import page
from app.schema.account_mail import AddressRequest, EmailVerification, MailQueued, PasswordReset
from app.services import account_mail as account_mail_service

router = APIRouter(prefix="/api/auth", tags=["auth"], dependencies=[Depends(no_store)])
pages_router = APIRouter(include_in_schema=False)

RECOVERY_QUEUED = "If an active account has this address, a mail with a link is on its way."
VERIFICATION_QUEUED = (
    "If an active account with this address awaits verification, a mail with a link is on its way."
)


# --- The API: ask for a link by mail, spend it ------------------------------------


@router.post(
    "/password-recovery",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MailQueued,
    summary="Ask for a password-reset link by mail",
    responses=error_responses(TooManyMailRequests),
)
async def recover_password(
    request: Request, data: AddressRequest, db: DbSession, settings: SettingsDep
) -> MailQueued:
    """Always `202`, with the same body and in the same time, whether or not the
    address has an account: a mail goes only to an existing, active account. Its
    link (`https://DOMAIN/reset-password#token=…`) works once, for
    `PASSWORD_RESET_TTL` (30 minutes); asking again voids the previous link.
    Limited per address and per client (`429` with `Retry-After`)."""
    await account_mail_service.request_account_mail(
        db=db, settings=settings, purpose="reset", email=data.email, client=client_of(request)
    )
    return MailQueued(message=RECOVERY_QUEUED)


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with a mailed token",
    responses=error_responses(InvalidLink),
)
async def reset_password(data: PasswordReset, db: DbSession, settings: SettingsDep) -> None:
    """Sets the password and ends **every** session of the account; log in with
    the new password. A forged, spent, replaced or expired token, one of another
    purpose (a verification token), or one mailed to an address the account no
    longer has is a `400` whose `detail` says which."""
    await account_mail_service.reset_password(
        db=db, settings=settings, token=data.token, new_password=data.new_password
    )


@router.post(
    "/verify-email",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Verify my email address with a mailed token",
    responses=error_responses(InvalidLink, EmailTaken),
)
async def verify_email(data: EmailVerification, db: DbSession) -> None:
    """Marks the address the token was mailed to as verified (`is_verified` in the
    user), if it is still the account's; the link of an email change
    (`PATCH /api/users/me`) makes its address the account's, verified. Either way
    **every session ends** (log in again): whoever held one before the address
    was proven keeps none. A bad token is a `400` saying why; an address another
    account took meanwhile, a `409`."""
    await account_mail_service.verify_email(db=db, token=data.token)


@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MailQueued,
    summary="Ask for the verification mail again",
    responses=error_responses(TooManyMailRequests),
)
async def resend_verification(
    request: Request, data: AddressRequest, db: DbSession, settings: SettingsDep
) -> MailQueued:
    """No login needed (it may be what is refused): always `202` with the same
    body; a mail goes only to an active account whose address is unverified, and
    voids its previous link. Limited per address and per client (`429`)."""
    await account_mail_service.request_account_mail(
        db=db, settings=settings, purpose="verify", email=data.email, client=client_of(request)
    )
    return MailQueued(message=VERIFICATION_QUEUED)


@router.post(
    "/secure-account",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="This wasn't me: take the account back after an email change",
    responses=error_responses(InvalidLink),
)
async def secure_account(data: EmailVerification, db: DbSession, settings: SettingsDep) -> None:
    """Spends the "this wasn't me" token mailed to the old address when the
    account's email change was asked (`PATCH /api/users/me`), valid for
    `EMAIL_CHANGE_UNDO_TTL` (7 days), even after the change went through: ends
    **every** session (device cookies too), voids every outstanding link (the
    pending change included), gives the account that address back (verified)
    unless another account took it meanwhile, and voids the password: set a new
    one with `POST /api/auth/password-recovery`. A bad token is a `400` saying why."""
    await account_mail_service.secure_account(db=db, settings=settings, token=data.token)


# --- The pages mailed links open --------------------------------------------------


@pages_router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(settings: SettingsDep) -> HTMLResponse:
    return page("reset_password", settings.PROJECT_NAME)


class _SpentOnOpening(NamedTuple):
    """A page that spends its link as it opens (by script: a mail scanner that
    fetches the link spends nothing), POSTing it to the API route of its own name."""

    title: str
    working: str  # what it says while the link is spent
    done: str  # and once it is


SPENT_ON_OPENING = {
    "verify-email": _SpentOnOpening(
        "Verify your email address",
        "Verifying…",
        "Your email address is verified. You can close this page.",
    ),
    "secure-account": _SpentOnOpening(
        "Secure your account",
        "Securing your account…",
        "Your account is secured: every session is signed out, its address is yours again "
        "and its password is void. Choose a new one with “Forgot password”.",
    ),
}


def _spent_on_opening(name: str, project: str) -> HTMLResponse:
    spent = SPENT_ON_OPENING[name]
    api = f"{router.prefix}/{name}"
    return page(
        "spent_on_opening",
        project,
        title=spent.title,
        working=spent.working,
        api=api,
        done=spent.done,
    )


@pages_router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(settings: SettingsDep) -> HTMLResponse:
    return _spent_on_opening("verify-email", settings.PROJECT_NAME)


@pages_router.get("/secure-account", response_class=HTMLResponse)
async def secure_account_page(settings: SettingsDep) -> HTMLResponse:
    return _spent_on_opening("secure-account", settings.PROJECT_NAME)
