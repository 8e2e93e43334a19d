"""Items, scoped in every query to those the viewer may reach (app/policy.py's
`item_scope`: their own, or every item with items.read_all / items.write_all)."""

from functools import lru_cache, partial
from typing import Any

from psycopg.errors import ForeignKeyViolation
from sqlalchemy import ColumnElement, bindparam, or_
from sqlalchemy import select as select_columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings
from app.database.reads import ReadPool, driver_sql
from app.exceptions import NotAuthenticated, NotFound
from app.models import Item, utcnow
from app.policy import ItemScope, Viewer, item_scope
from app.schema.common import Page
from app.schema.items import ItemCreate, ItemListParams, ItemOut, ItemPatch
from app.services.item_ranks import key_at_offset_sql
from app.services.paging import ListSQL, ScanFirst, SortOrder, list_sql, paginate

ITEM_NOT_FOUND = "Item not found"
ACCOUNT_GONE = "The account no longer exists"


# The list's optional filters, each bound only when given.
FILTERS = ("q", "tag", "min_price", "max_price")


# What ItemOut is read from: reads select these columns, never ORM objects.
_ITEM_COLUMNS = select_columns(
    col(Item.id),
    col(Item.owner_id),
    col(Item.name),
    col(Item.description),
    col(Item.price),
    col(Item.tax),
    col(Item.tags),
    col(Item.image),
    col(Item.created_at),
    col(Item.updated_at),
)

# The Postgres type of `tags`, for binding a one-tag array to `@>`.
_TAGS_TYPE = Item.__table__.c.tags.type  # type: ignore[attr-defined]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(columns: Any, *, filters: frozenset[str]) -> list[ColumnElement[bool]]:
    """The filters set, on `columns`: the table's, or a subquery's of the same names."""
    conditions = []
    if "q" in filters:
        conditions.append(
            or_(
                columns.name.ilike(bindparam("q"), escape="\\"),
                columns.description.ilike(bindparam("q"), escape="\\"),
            )
        )
    if "tag" in filters:
        conditions.append(columns.tags.contains(bindparam("tag", type_=_TAGS_TYPE)))
    if "min_price" in filters:
        conditions.append(columns.price >= bindparam("min_price"))
    if "max_price" in filters:
        conditions.append(columns.price <= bindparam("max_price"))
    return conditions


@lru_cache(maxsize=256)
def _list_sql(*, scope: ItemScope, filters: frozenset[str], order: SortOrder) -> ListSQL:
    """The list's statements for one shape: whose items, which filters are set,
    the order. Values are bound per request (see _list_values). A substring
    search is tried on the next rows of the sort first, before the trigram indexes,
    which are slow for substrings whose trigrams are common (app/services/paging.py)."""
    scoped = scope.restrict(_ITEM_COLUMNS)
    conditions = partial(_conditions, filters=filters)
    statement = scoped.where(*conditions(Item.__table__.c))  # type: ignore[attr-defined]
    scan_first = ScanFirst(unfiltered=scoped, conditions=conditions) if "q" in filters else None
    # Only the list of all items is large enough to have rank anchors.
    anchored = scope is ItemScope.ALL and not filters
    return list_sql(
        statement,
        model=Item,
        order=order,
        filtered=bool(filters),
        scan_first=scan_first,
        anchored_key_at_offset=key_at_offset_sql(order) if anchored else None,
    )


def _list_values(params: ItemListParams) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: value for name in FILTERS if (value := getattr(params, name)) is not None
    }
    if "q" in values:
        values["q"] = f"%{_escape_like(values['q'])}%"
    if "tag" in values:
        values["tag"] = [values["tag"]]
    return values


def _stored(data: ItemCreate | ItemPatch, *, fields: set[str] | None = None) -> dict[str, Any]:
    values = data.model_dump(mode="python", include=fields, exclude_unset=fields is None)
    if values.get("image") is not None:
        values["image"] = data.image.model_dump(mode="json") if data.image else None
    return values


async def create_item(*, db: AsyncSession, viewer: Viewer, data: ItemCreate) -> ItemOut:
    """The item is the viewer's."""
    item = Item(owner_id=viewer.id, **_stored(data, fields=set(ItemCreate.model_fields)))
    db.add(item)
    try:
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        if isinstance(exc.orig, ForeignKeyViolation):
            # The owner was deleted while this request was under way.
            raise NotAuthenticated(ACCOUNT_GONE) from exc
        raise
    return ItemOut.model_validate(item)


async def list_items(
    *,
    reader: ReadPool,
    viewer: Viewer,
    params: ItemListParams,
    settings: Settings,
) -> Page[ItemOut]:
    values = _list_values(params)
    scope = item_scope(viewer)
    sql = _list_sql(scope=scope, filters=frozenset(values), order=SortOrder(params.sort))
    values.update(scope.values(viewer))
    return await paginate(
        reader=reader,
        sql=sql,
        values=values,
        params=params,
        settings=settings,
        out=ItemOut,
    )


async def _get_writable(
    *, db: AsyncSession, viewer: Viewer, item_id: int, for_update: bool = False
) -> Item:
    """The item, if the viewer may change it (item_scope's `write`)."""
    scope = item_scope(viewer, write=True)
    statement = scope.restrict(select(Item).where(col(Item.id) == item_id))
    if for_update:
        statement = statement.with_for_update()
    item = (await db.exec(statement, params=scope.values(viewer))).one_or_none()
    if item is None:
        # Another user's item is indistinguishable from a missing one.
        raise NotFound(ITEM_NOT_FOUND)
    return item


# One item, in each scope.
_ITEM_SQL = {
    scope: driver_sql(scope.restrict(_ITEM_COLUMNS.where(col(Item.id) == bindparam("item_id"))))
    for scope in ItemScope
}


async def get_item(*, reader: ReadPool, viewer: Viewer, item_id: int) -> ItemOut:
    scope = item_scope(viewer)
    row = await reader.fetch_one(_ITEM_SQL[scope], {"item_id": item_id, **scope.values(viewer)})
    if row is None:
        # Another user's item is indistinguishable from a missing one.
        raise NotFound(ITEM_NOT_FOUND)
    return ItemOut.model_validate(row)


async def _apply(*, db: AsyncSession, item: Item, values: dict[str, Any]) -> ItemOut:
    for field, value in values.items():
        setattr(item, field, value)
    item.updated_at = utcnow()
    db.add(item)
    await db.commit()
    return ItemOut.model_validate(item)


async def replace_item(
    *, db: AsyncSession, viewer: Viewer, item_id: int, data: ItemCreate
) -> ItemOut:
    """PUT: every field takes the new value; absent optional fields are cleared."""
    item = await _get_writable(db=db, viewer=viewer, item_id=item_id, for_update=True)
    return await _apply(db=db, item=item, values=_stored(data, fields=set(ItemCreate.model_fields)))


async def patch_item(*, db: AsyncSession, viewer: Viewer, item_id: int, data: ItemPatch) -> ItemOut:
    """PATCH: only the fields present in the request change."""
    item = await _get_writable(db=db, viewer=viewer, item_id=item_id, for_update=True)
    return await _apply(db=db, item=item, values=_stored(data))


async def delete_item(*, db: AsyncSession, viewer: Viewer, item_id: int) -> None:
    item = await _get_writable(db=db, viewer=viewer, item_id=item_id)
    await db.delete(item)
    await db.commit()
