"""Users: identity (email), credentials (hash), and what they may do (flags)."""

from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import passwords
from app.auth.sessions import revoke_all_sessions
from app.config import Settings
from app.exceptions import Conflict, EmailTaken, NotFound, WrongPassword
from app.models.models import User, utcnow
from app.schema.common import Page
from app.schema.users import UserOut
from app.services.paging import Paging, SortOrder, paginate

LAST_SUPERUSER = "The last active superuser cannot be removed, demoted or deactivated"


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def _flush_unless_email_taken(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        if isinstance(exc.orig, UniqueViolation):
            raise EmailTaken() from exc
        raise


async def find_by_email(*, session: AsyncSession, email: str) -> User | None:
    result = await session.exec(select(User).where(col(User.email) == normalize_email(email)))
    return result.one_or_none()


async def create_user(
    *,
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    full_name: str | None,
) -> User:
    """Add a user; the caller commits. A taken email is a Conflict."""
    hashed = await passwords.hash_password(password, rounds=settings.BCRYPT_ROUNDS)
    user = User(email=normalize_email(email), hashed_password=hashed, full_name=full_name)
    session.add(user)
    await _flush_unless_email_taken(session)
    return user


async def get_user(*, session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


async def list_users(*, session: AsyncSession, paging: Paging, order: SortOrder) -> Page[UserOut]:
    return await paginate(
        session=session,
        statement=select(User),
        model=User,
        paging=paging,
        order=order,
        out=UserOut,
    )


async def _guard_last_superuser(*, session: AsyncSession, user: User) -> None:
    if not (user.is_superuser and user.is_active):
        return
    others = await session.exec(
        select(func.count())
        .select_from(User)
        .where(col(User.is_superuser), col(User.is_active), col(User.id) != user.id)
    )
    if others.one() == 0:
        raise Conflict(LAST_SUPERUSER)


async def update_user(*, session: AsyncSession, user: User, changes: dict[str, Any]) -> User:
    """Apply the given fields. Deactivating a user ends all their sessions."""
    if "email" in changes:
        changes["email"] = normalize_email(changes["email"])
    ends_admin_rights = (changes.get("is_active") is False) or (
        changes.get("is_superuser") is False
    )
    if ends_admin_rights:
        await _guard_last_superuser(session=session, user=user)
    for field, value in changes.items():
        setattr(user, field, value)
    user.updated_at = utcnow()
    session.add(user)
    await _flush_unless_email_taken(session)
    if changes.get("is_active") is False:
        assert user.id is not None
        await revoke_all_sessions(session=session, user_id=user.id)
    await session.commit()
    return user


async def change_password(
    *, session: AsyncSession, settings: Settings, user: User, current: str, new: str
) -> None:
    """Check the current password, store the new hash, and end every session."""
    if not await passwords.verify_password(current, user.hashed_password):
        raise WrongPassword()
    hashed = await passwords.hash_password(new, rounds=settings.BCRYPT_ROUNDS)
    assert user.id is not None
    await session.exec(
        update(User)
        .where(col(User.id) == user.id)
        .values(hashed_password=hashed, updated_at=utcnow())
    )
    await revoke_all_sessions(session=session, user_id=user.id)
    await session.commit()


async def delete_user(*, session: AsyncSession, user: User) -> None:
    """Delete the user; their items and sessions go with them (ON DELETE CASCADE)."""
    await _guard_last_superuser(session=session, user=user)
    await session.delete(user)
    await session.commit()


async def ensure_superuser(*, session: AsyncSession, settings: Settings) -> bool:
    """Create the first superuser from the settings unless the email exists.
    Safe when several processes race: the insert is ON CONFLICT DO NOTHING."""
    if not (settings.FIRST_SUPERUSER_EMAIL and settings.FIRST_SUPERUSER_PASSWORD):
        return False
    hashed = await passwords.hash_password(
        settings.FIRST_SUPERUSER_PASSWORD.get_secret_value(), rounds=settings.BCRYPT_ROUNDS
    )
    result = await session.exec(
        insert(User)
        .values(
            email=normalize_email(settings.FIRST_SUPERUSER_EMAIL),
            hashed_password=hashed,
            full_name="Administrator",
            is_active=True,
            is_superuser=True,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(col(User.id))
    )
    created = result.scalar_one_or_none() is not None
    await session.commit()
    return created
