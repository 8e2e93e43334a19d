"""Mails anyone may ask for by address: a password-reset link, the verification
mail again. Asking costs the same whether or not an account has the address."""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import throttle
from app.auth.sessions import Client
from app.config import Settings
from app.exceptions import TooManyMailRequests
from app.mail import outbox
from app.schema.users import normalize_email
from app.services.account_mail import Compose


async def request_account_mail(
    *, db: AsyncSession, settings: Settings, purpose: Compose, email: str, client: Client
) -> None:
    """Someone asks for an account mail for an address: count the request against
    the limits (this client's share of the address, the address's ceiling over
    every flow, the client's), queue the mail, wake the sender. The same work
    whether or not an account has the address: the sender looks it up."""
    email = normalize_email(email)
    await throttle.reserve(
        db=db,
        limits=throttle.mail_request_limits(settings=settings, email=email, client=client.address),
        error=TooManyMailRequests,
    )
    outbox.enqueue(db=db, recipient=email, purpose=purpose)
    await db.commit()
    outbox.wake_senders()
