"""`/api/items`: the caller's items (an admin's: everyone's)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from app.dependencies import DbSession, ReaderDep, SettingsDep, get_current_user, requires
from app.exceptions import (
    ApiKeyRefused,
    InvalidCursor,
    NotAuthenticated,
    NotFound,
    error_responses,
)
from app.policy import Permission, Viewer
from app.routes.responses import PydanticJSONResponse
from app.schema.common import MAX_ID, Page
from app.schema.items import ItemCreate, ItemListParams, ItemOut, ItemPatch
from app.services import items as items_service

router = APIRouter(
    prefix="/api/items",
    tags=["items"],
    dependencies=[Depends(get_current_user)],
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
MISSING = error_responses(NotFound)
# Bounded like the integer column: a larger id is a 422, not a database error.
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description=f"The item's id, 1–{MAX_ID}.")]


@router.post(
    "/", status_code=status.HTTP_201_CREATED, response_model=ItemOut, summary="Create an item"
)
async def create_item(
    data: ItemCreate,
    viewer: Annotated[Viewer, Depends(requires(Permission.ITEMS_WRITE))],
    db: DbSession,
) -> ItemOut:
    """`name` and `price` are required. `total` in the answer is **price + tax**."""
    return await items_service.create_item(db=db, viewer=viewer, data=data)


@router.get(
    "/",
    response_model=Page[ItemOut],
    summary="List items",
    responses=error_responses(InvalidCursor),
)
async def list_items(
    viewer: Annotated[Viewer, Depends(requires(Permission.ITEMS_READ))],
    reader: ReaderDep,
    settings: SettingsDep,
    params: Annotated[ItemListParams, Query()],
) -> PydanticJSONResponse:
    """Your items, filtered, sorted and paginated. Page on by passing each page's
    `next` as `cursor` (with the same sort and filters) until it is null: fast at
    any depth, and no row is skipped or repeated while others are added or
    deleted. `offset` works too, but the database walks every skipped row.
    `total` counts all matches exactly up to a bound; beyond it, it is an estimate
    and `total_exact` is false. A cursor made for another list is a 400."""
    return PydanticJSONResponse(
        await items_service.list_items(
            reader=reader,
            viewer=viewer,
            params=params,
            settings=settings,
        )
    )


@router.get("/{item_id}", response_model=ItemOut, summary="Read an item", responses=MISSING)
async def read_item(
    item_id: ItemId,
    viewer: Annotated[Viewer, Depends(requires(Permission.ITEMS_READ))],
    reader: ReaderDep,
) -> PydanticJSONResponse:
    return PydanticJSONResponse(
        await items_service.get_item(reader=reader, viewer=viewer, item_id=item_id)
    )


@router.put("/{item_id}", response_model=ItemOut, summary="Replace an item", responses=MISSING)
async def replace_item(
    item_id: ItemId,
    data: ItemCreate,
    viewer: Annotated[Viewer, Depends(requires(Permission.ITEMS_WRITE))],
    db: DbSession,
) -> ItemOut:
    """**Full replacement**: required fields must be present; optional fields left
    out are cleared."""
    return await items_service.replace_item(db=db, viewer=viewer, item_id=item_id, data=data)


@router.patch("/{item_id}", response_model=ItemOut, summary="Update some fields", responses=MISSING)
async def patch_item(
    item_id: ItemId,
    data: ItemPatch,
    viewer: Annotated[Viewer, Depends(requires(Permission.ITEMS_WRITE))],
    db: DbSession,
) -> ItemOut:
    """**Partial update**: fields left out stay as they are; `null` clears an
    optional field."""
    return await items_service.patch_item(db=db, viewer=viewer, item_id=item_id, data=data)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an item",
    responses=MISSING,
)
async def delete_item(
    item_id: ItemId,
    viewer: Annotated[Viewer, Depends(requires(Permission.ITEMS_WRITE))],
    db: DbSession,
) -> None:
    await items_service.delete_item(db=db, viewer=viewer, item_id=item_id)
