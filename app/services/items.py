"""Items, scoped to their owner in every query (an admin sees all)."""

from decimal import Decimal
from typing import Any

from psycopg.errors import ForeignKeyViolation
from pydantic import BaseModel
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.exceptions import NotAuthenticated, NotFound
from app.models.models import Item, User, utcnow
from app.schema.common import Page
from app.schema.items import ItemCreate, ItemOut, ItemPatch
from app.services.paging import Paging, SortOrder, paginate

ITEM_NOT_FOUND = "Item not found"
ACCOUNT_GONE = "The account no longer exists"


class ItemFilters(BaseModel):
    q: str | None = None
    tag: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None


def _visible_to(viewer: User, statement: SelectOfScalar[Item]) -> SelectOfScalar[Item]:
    if viewer.is_superuser:
        return statement
    return statement.where(col(Item.owner_id) == viewer.id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(statement: SelectOfScalar[Item], filters: ItemFilters) -> SelectOfScalar[Item]:
    if filters.q:
        pattern = f"%{_escape_like(filters.q)}%"
        statement = statement.where(
            or_(
                col(Item.name).ilike(pattern, escape="\\"),
                col(Item.description).ilike(pattern, escape="\\"),
            )
        )
    if filters.tag:
        statement = statement.where(col(Item.tags).contains([filters.tag]))
    if filters.min_price is not None:
        statement = statement.where(col(Item.price) >= filters.min_price)
    if filters.max_price is not None:
        statement = statement.where(col(Item.price) <= filters.max_price)
    return statement


def _stored(data: ItemCreate | ItemPatch, *, fields: set[str] | None = None) -> dict[str, Any]:
    values = data.model_dump(mode="python", include=fields, exclude_unset=fields is None)
    if values.get("image") is not None:
        values["image"] = data.image.model_dump(mode="json") if data.image else None
    return values


async def create_item(*, session: AsyncSession, owner: User, data: ItemCreate) -> ItemOut:
    assert owner.id is not None
    item = Item(owner_id=owner.id, **_stored(data, fields=set(ItemCreate.model_fields)))
    session.add(item)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if isinstance(exc.orig, ForeignKeyViolation):
            # The owner was deleted while this request was under way.
            raise NotAuthenticated(ACCOUNT_GONE) from exc
        raise
    return ItemOut.model_validate(item)


async def list_items(
    *,
    session: AsyncSession,
    viewer: User,
    filters: ItemFilters,
    paging: Paging,
    order: SortOrder,
) -> Page[ItemOut]:
    return await paginate(
        session=session,
        statement=_filtered(_visible_to(viewer, select(Item)), filters),
        model=Item,
        paging=paging,
        order=order,
        out=ItemOut,
    )


async def _get_visible(
    *, session: AsyncSession, viewer: User, item_id: int, for_update: bool = False
) -> Item:
    statement = _visible_to(viewer, select(Item).where(col(Item.id) == item_id))
    if for_update:
        statement = statement.with_for_update()
    item = (await session.exec(statement)).one_or_none()
    if item is None:
        # Another user's item is indistinguishable from a missing one.
        raise NotFound(ITEM_NOT_FOUND)
    return item


async def get_item(*, session: AsyncSession, viewer: User, item_id: int) -> ItemOut:
    return ItemOut.model_validate(
        await _get_visible(session=session, viewer=viewer, item_id=item_id)
    )


async def _apply(*, session: AsyncSession, item: Item, values: dict[str, Any]) -> ItemOut:
    for field, value in values.items():
        setattr(item, field, value)
    item.updated_at = utcnow()
    session.add(item)
    await session.commit()
    return ItemOut.model_validate(item)


async def replace_item(
    *, session: AsyncSession, viewer: User, item_id: int, data: ItemCreate
) -> ItemOut:
    """PUT: every field takes the new value; absent optional fields are cleared."""
    item = await _get_visible(session=session, viewer=viewer, item_id=item_id, for_update=True)
    return await _apply(
        session=session, item=item, values=_stored(data, fields=set(ItemCreate.model_fields))
    )


async def patch_item(
    *, session: AsyncSession, viewer: User, item_id: int, data: ItemPatch
) -> ItemOut:
    """PATCH: only the fields present in the request change."""
    item = await _get_visible(session=session, viewer=viewer, item_id=item_id, for_update=True)
    return await _apply(session=session, item=item, values=_stored(data))


async def delete_item(*, session: AsyncSession, viewer: User, item_id: int) -> None:
    item = await _get_visible(session=session, viewer=viewer, item_id=item_id)
    await session.delete(item)
    await session.commit()
