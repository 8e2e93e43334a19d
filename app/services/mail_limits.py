"""The per-address mail limit, for every flow that mails an address.

Anyone may ask for a recovery or verification mail (app/services/mail_requests.py);
an account's own actions mail too: registration and an email change (a link to
the new address), an admin's change of address, and the notices of a password
change, a reset or a new address. Each of these counts against the address's
ceiling (MAIL_PER_ADDRESS_MAX per MAIL_REQUEST_WINDOW), so no flow is a way
around it. What happens at the ceiling depends on who asked:

- a signed-in user asking for the mail (an email change): 429;
- a mail an action sends on its own (registration, an admin's change): not
  sent (the account can ask again later, POST /api/auth/verify-email/resend);
- a security notice to the account's own address: counted, and sent anyway
  (only the password's holder can cause one, and it must not be suppressible).

Addresses are already normalised (app/services/users.normalize_email).
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import throttle
from app.config import Settings
from app.exceptions import TooManyAttempts, TooManyMailRequests


async def reserve(*, db: AsyncSession, settings: Settings, email: str, client: str) -> None:
    """Count a mail a signed-in user asks for, or TooManyMailRequests (nothing
    counted then). The caller commits."""
    await throttle.reserve(
        db=db,
        limits=[
            throttle.mail_address_limit(settings=settings, email=email),
            throttle.mail_client_limit(settings=settings, client=client),
        ],
        error=TooManyMailRequests,
    )


async def allowed(*, db: AsyncSession, settings: Settings, email: str) -> bool:
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


async def charge(*, db: AsyncSession, settings: Settings, email: str) -> None:
    """Count a notice to the account's own address; it goes out whatever the count."""
    await throttle.charge(
        db=db, limits=[throttle.mail_address_limit(settings=settings, email=email)]
    )
