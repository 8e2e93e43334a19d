"""Users: identity (email), credentials (hash), what they may do (the admin role
and the others: app/services/roles.py guards them), and another user's view of
their sessions."""

from functools import lru_cache

from sqlalchemy import bindparam, update
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens, passwords, throttle
from app.auth.sessions import end_all_sessions, live_sessions
from app.config import Settings
from app.database.db import flush_unless_taken
from app.database.reads import ReadPool, driver_sql
from app.exceptions import (
    DomainError,
    EmailTaken,
    NotAuthenticated,
    NotFound,
    PasswordRequired,
    WrongPassword,
)
from app.mail import outbox
from app.models import AuthenticatedUser, User, utcnow
from app.policy import (
    ADMIN_ROLE,
    Viewer,
    admin_role_columns,
    grant_admin_role,
    holds_admin_role,
)
from app.schema.audit import EventType
from app.schema.auth import SessionOut
from app.schema.common import Page
from app.schema.users import (
    UNCHANGED,
    AdminUserUpdate,
    OwnProfileUpdate,
    UserListParams,
    UserOut,
    normalize_email,
)
from app.services import account_mail, audit, roles
from app.services.paging import ListSQL, SortOrder, list_sql, paginate


async def find_by_email(*, db: AsyncSession, normalized_email: str) -> User | None:
    """`normalized_email` is normalize_email's result (the caller needs it too)."""
    result = await db.exec(select(User).where(col(User.email) == normalized_email))
    return result.one_or_none()


async def create_user(
    *,
    db: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    full_name: str | None,
) -> User:
    """Add a user; the caller commits. A taken email is a Conflict."""
    hashed = await passwords.hash_password(password, settings=settings)
    user = User(email=normalize_email(email), hashed_password=hashed, full_name=full_name)
    db.add(user)
    await flush_unless_taken(db, EmailTaken)
    return user


async def get_user(*, db: AsyncSession, user_id: int) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


# What UserOut is read from: its fields' columns, in its order.
_USER_COLUMNS = select_columns(*(col(getattr(User, field)) for field in UserOut.model_fields))


@lru_cache(maxsize=8)
def _list_sql(order: SortOrder) -> ListSQL:
    return list_sql(_USER_COLUMNS, model=User, order=order)


async def list_users(
    *, reader: ReadPool, settings: Settings, params: UserListParams
) -> Page[UserOut]:
    sql = _list_sql(SortOrder(params.sort))
    return await paginate(
        reader=reader,
        sql=sql,
        values={},
        params=params,
        settings=settings,
        out=UserOut,
    )


_USER_EXISTS_SQL = driver_sql(select_columns(col(User.id)).where(col(User.id) == bindparam("id")))


async def list_user_sessions(*, reader: ReadPool, viewer: Viewer, user_id: int) -> list[SessionOut]:
    """The user's live sessions, newest first; `current` marks the viewer's own
    (when the user is the viewer)."""
    if await reader.fetch_one(_USER_EXISTS_SQL, {"id": user_id}) is None:
        raise NotFound("User not found")
    return await live_sessions(reader=reader, user_id=user_id, current_session_id=viewer.session_id)


async def end_user_sessions(*, db: AsyncSession, viewer: Viewer, user_id: int) -> None:
    """End every session of the user, access tokens and logins in flight included
    (the account stays active: they may log in again). Not those of an account
    holding a permission the viewer lacks (403): an admin's sessions are the
    business of admins."""
    await get_user(db=db, user_id=user_id)
    await roles.refuse_unless_outranks(db=db, viewer=viewer, user_id=user_id)
    await end_all_sessions(db=db, user_id=user_id)
    audit.record(db, EventType.SESSIONS_ENDED, actor=viewer, target=user_id)
    await db.commit()


async def update_user(
    *, db: AsyncSession, settings: Settings, viewer: Viewer, user_id: int, command: AdminUserUpdate
) -> User:
    """Apply the command's fields. Deactivating a user ends all their sessions. A
    new email is unverified (unless the command sets `is_verified` with it) and
    gets a verification mail.

    An account holding a permission the viewer lacks is the business of those who
    hold it (403), and so is the admin role (`is_superuser`): granting or
    withdrawing it needs every permission. Neither the last active admin nor the
    last active holder of roles.manage can be demoted or deactivated (409)."""
    user = await get_user(db=db, user_id=user_id)
    await roles.refuse_unless_outranks(db=db, viewer=viewer, user_id=user_id)
    changes_admin = command.admin is not None and command.admin != holds_admin_role(user)
    if changes_admin:
        roles.refuse_admin_change_unless_admin(viewer=viewer)
    new_email = None
    is_verified = command.is_verified
    email = None if command.email is None else normalize_email(command.email)
    if email is not None and email != user.email:
        new_email = email
        if is_verified is None:
            is_verified = False
    deactivates = command.is_active is False
    events = _account_events(user, command, new_email=new_email, changes_admin=changes_admin)
    holders = None
    if deactivates or changes_admin:
        holders = await roles.lock_role_holders(db)
    if email is not None:
        user.email = email
    if command.full_name is not UNCHANGED:
        user.full_name = command.full_name
    if command.is_active is not None:
        user.is_active = command.is_active
    if command.admin is not None:
        grant_admin_role(user, granted=command.admin)
    if is_verified is not None:
        user.is_verified = is_verified
    user.updated_at = utcnow()
    db.add(user)
    await flush_unless_taken(db, EmailTaken)
    if holders is not None:
        await roles.keep_role_holders(db, holders)
    if deactivates:
        await end_all_sessions(db=db, user_id=user_id)
    if new_email is not None or deactivates:
        # A link mailed before must not revive with the old address or the account.
        await one_time_tokens.void_links(db=db, user_id=user_id, now=utcnow())
    if new_email is not None and not user.is_verified:
        await account_mail.queue_verification(db=db, settings=settings, email=new_email)
    for event, details in events:
        audit.record(db, event, actor=viewer, target=user_id, details=details)
    await db.commit()
    if new_email is not None:
        outbox.wake_senders()
    return user


def _account_events(
    user: User, command: AdminUserUpdate, *, new_email: str | None, changes_admin: bool
) -> list[tuple[EventType, dict[str, object]]]:
    """What an administrator's change does to the account, as audit events."""
    events: list[tuple[EventType, dict[str, object]]] = []
    if command.is_active is not None and command.is_active != user.is_active:
        events.append(
            (EventType.USER_REACTIVATED if command.is_active else EventType.USER_DEACTIVATED, {})
        )
    if new_email is not None:
        events.append((EventType.EMAIL_CHANGED, {"from": user.email, "to": new_email}))
    if command.is_verified and not user.is_verified:
        events.append((EventType.EMAIL_VERIFIED, {"email": new_email or user.email}))
    if changes_admin:
        granted = EventType.ROLES_GRANTED if command.admin else EventType.ROLES_REVOKED
        events.append((granted, {"roles": [ADMIN_ROLE]}))
    return events


async def _check_current_password(
    *, db: AsyncSession, settings: Settings, user: AuthenticatedUser, password: str
) -> throttle.Attempt:
    """WrongPassword unless `password` is the user's; guesses are throttled like
    logins (the caller forgives the attempt once its change is stored). Commits
    the count, so no connection is held while bcrypt runs."""
    attempt = await throttle.reserve(
        db=db, limits=throttle.password_change_limits(settings=settings, user_id=user.id)
    )
    await db.commit()
    if not await passwords.verify_password(password, user.hashed_password, settings=settings):
        raise WrongPassword()
    return attempt


async def update_me(
    *,
    db: AsyncSession,
    settings: Settings,
    user: AuthenticatedUser,
    command: OwnProfileUpdate,
    client: str,
) -> User:
    """The user's own changes. The name changes at once. A new email does not:
    it needs the current password, then the address gets a link that makes it
    the account's (POST /api/auth/verify-email, which ends every session), and
    the current address gets a notice with a "this wasn't me" link
    (POST /api/auth/secure-account). Until the link is followed nothing changes,
    so a stolen session cannot carry the account away."""
    password = command.current_password
    new_email = None if command.email is None else normalize_email(command.email)
    if new_email == user.email:
        new_email = None
    attempt = None
    if new_email is not None:
        if password is None:
            raise PasswordRequired()
        attempt = await _check_current_password(
            db=db, settings=settings, user=user, password=password
        )
        try:
            if await find_by_email(db=db, normalized_email=new_email) is not None:
                raise EmailTaken()
            await account_mail.reserve_email_change(
                db=db, settings=settings, email=new_email, client=client
            )
        except DomainError:
            # The password was right: refused for another reason, it counts as no guess.
            await db.rollback()
            await throttle.forgive(db=db, attempt=attempt)
            await db.commit()
            raise
    account = await get_user(db=db, user_id=user.id)
    if account.session_epoch != user.session_epoch:
        raise NotAuthenticated()  # every session ended while the password was checked
    if command.full_name is not UNCHANGED:
        account.full_name = command.full_name
    account.updated_at = utcnow()
    db.add(account)
    if new_email is not None and attempt is not None:
        await account_mail.queue_email_change(
            db=db, settings=settings, user_id=user.id, old=account.email, new=new_email
        )
        await throttle.forgive(db=db, attempt=attempt)
    await db.commit()
    if new_email is not None:
        outbox.wake_senders()
    return account


async def change_password(
    *, db: AsyncSession, settings: Settings, user: AuthenticatedUser, current: str, new: str
) -> None:
    """Check the current password, store the new hash, end every session, and
    tell the account's address.

    Guesses of the current password are throttled like logins. No connection is
    held while bcrypt runs; the new hash is stored only if no session-ending change
    came in between (else the caller's own session has ended: 401)."""
    user_id, epoch = user.id, user.session_epoch
    attempt = await _check_current_password(db=db, settings=settings, user=user, password=current)
    hashed = await passwords.hash_password(new, settings=settings)
    stored = await db.exec(
        update(User)
        .where(col(User.id) == user_id, col(User.session_epoch) == epoch)
        .values(hashed_password=hashed, updated_at=utcnow())
        .returning(col(User.id))
    )
    if stored.scalar_one_or_none() is None:
        await db.rollback()
        raise NotAuthenticated()
    await end_all_sessions(db=db, user_id=user_id)
    # A reset link mailed before the change must not undo it.
    await one_time_tokens.void(db=db, user_id=user_id, purpose="reset", now=utcnow())
    await throttle.forgive(db=db, attempt=attempt)
    audit.record(db, EventType.PASSWORD_CHANGED, actor=user_id, target=user_id)
    await account_mail.queue_password_notice(
        db=db, settings=settings, email=user.email, event="changed"
    )
    await db.commit()
    outbox.wake_senders()


async def delete_user(*, db: AsyncSession, viewer: Viewer, user_id: int) -> None:
    """Delete the user; their items, sessions and roles go with them (ON DELETE
    CASCADE). Not an account holding a permission the viewer lacks (403), nor
    the last active admin or holder of roles.manage (409)."""
    user = await get_user(db=db, user_id=user_id)
    await roles.refuse_unless_outranks(db=db, viewer=viewer, user_id=user_id)
    holders = await roles.lock_role_holders(db)
    await db.delete(user)
    await roles.keep_role_holders(db, holders)
    # The address too: the record outlives the account it names.
    audit.record(
        db, EventType.USER_DELETED, actor=viewer, target=user_id, details={"email": user.email}
    )
    await db.commit()


async def ensure_superuser(*, db: AsyncSession, settings: Settings) -> bool:
    """Create the first superuser from the settings unless the email exists.
    Safe when several processes race: the insert is ON CONFLICT DO NOTHING."""
    if not (settings.FIRST_SUPERUSER_EMAIL and settings.FIRST_SUPERUSER_PASSWORD):
        return False
    hashed = await passwords.hash_password(
        settings.FIRST_SUPERUSER_PASSWORD.get_secret_value(), settings=settings
    )
    result = await db.exec(
        insert(User)
        .values(
            email=normalize_email(settings.FIRST_SUPERUSER_EMAIL),
            hashed_password=hashed,
            full_name="Administrator",
            is_active=True,
            # The operator chose this address: nothing to prove.
            is_verified=True,
            **admin_role_columns(granted=True),
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(col(User.id))
    )
    created = result.scalar_one_or_none() is not None
    await db.commit()
    return created
