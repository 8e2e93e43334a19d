"""API keys: created by their owner (shown once), listed, revoked; an admin with
users.sessions lists and revokes anyone's. How a key authenticates is the token
service's (app/auth/service.py `user_from_api_key`)."""

import uuid

from sqlalchemy import bindparam, delete
from sqlalchemy import select as select_columns
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import api_keys
from app.database.reads import ReadPool, driver_sql
from app.exceptions import NotFound, PermissionDenied
from app.models import ApiKey, User
from app.policy import Permission, Viewer, lacking, may_grant, role_permissions
from app.schema.api_keys import ApiKeyCreated, ApiKeyOut, NewApiKey
from app.schema.audit import EventType
from app.services import audit, roles

KEY_NOT_FOUND = "API key not found"


def _scopes(stored: list[str]) -> list[Permission]:
    held = role_permissions(stored)
    return [p for p in Permission if p in held]


async def create_key(*, db: AsyncSession, viewer: Viewer, request: NewApiKey) -> ApiKeyCreated:
    """A key for the viewer, scoped to permissions they hold (403 otherwise)."""
    if not may_grant(viewer, request.scopes):
        missing = ", ".join(p.value for p in lacking(viewer, request.scopes))
        raise PermissionDenied(f"Not enough privileges: you do not hold {missing}")
    new = api_keys.generate()
    row = ApiKey(
        user_id=viewer.id,
        name=request.name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=[p.value for p in Permission if p in request.scopes],
        expires_at=request.expires_at,
    )
    db.add(row)
    await db.flush()
    audit.record(
        db,
        EventType.API_KEY_CREATED,
        actor=viewer,
        target=viewer.id,
        details={
            "key_id": str(row.id),
            "name": row.name,
            "prefix": row.prefix,
            "scopes": row.scopes,
        },
    )
    await db.commit()
    return ApiKeyCreated(
        id=row.id,
        name=row.name,
        key=new.key,
        prefix=row.prefix,
        scopes=_scopes(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


_KEYS_SQL = driver_sql(
    select_columns(
        col(ApiKey.id),
        col(ApiKey.name),
        col(ApiKey.prefix),
        col(ApiKey.scopes),
        col(ApiKey.created_at),
        col(ApiKey.expires_at),
        col(ApiKey.last_used_at),
    )
    .where(col(ApiKey.user_id) == bindparam("user_id"))
    .order_by(col(ApiKey.created_at).desc(), col(ApiKey.id))
)
_USER_EXISTS_SQL = driver_sql(select_columns(col(User.id)).where(col(User.id) == bindparam("id")))


async def list_keys(*, reader: ReadPool, user_id: int) -> list[ApiKeyOut]:
    """The user's keys, newest first (expired ones too, until revoked)."""
    rows = await reader.fetch_all(_KEYS_SQL, {"user_id": user_id})
    return [ApiKeyOut(**{**row, "scopes": _scopes(row["scopes"])}) for row in rows]


async def list_user_keys(*, reader: ReadPool, user_id: int) -> list[ApiKeyOut]:
    if await reader.fetch_one(_USER_EXISTS_SQL, {"id": user_id}) is None:
        raise NotFound("User not found")
    return await list_keys(reader=reader, user_id=user_id)


async def revoke_key(*, db: AsyncSession, viewer: Viewer, user_id: int, key_id: uuid.UUID) -> None:
    """The user's key stops working at once (deleted; the audit trail keeps its
    name and prefix). Another user's key is not found, like a missing one; an
    account holding a permission the viewer lacks is refused (403)."""
    await roles.refuse_unless_outranks(db=db, viewer=viewer, user_id=user_id)
    revoked = (
        await db.exec(
            delete(ApiKey)
            .where(col(ApiKey.id) == key_id, col(ApiKey.user_id) == user_id)
            .returning(col(ApiKey.name), col(ApiKey.prefix))
        )
    ).one_or_none()
    if revoked is None:
        raise NotFound(KEY_NOT_FOUND)
    name, prefix = revoked
    audit.record(
        db,
        EventType.API_KEY_REVOKED,
        actor=viewer,
        target=user_id,
        details={"key_id": str(key_id), "name": name, "prefix": prefix},
    )
    await db.commit()
