"""Dependencies written once and reused by the routers.

All are `async def`, even those that never await: FastAPI runs a plain `def`
dependency on a worker thread, a hop per dependency per request.
"""

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from pydantic import AfterValidator
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import service as auth_service
from app.config import Settings
from app.database.db import open_session
from app.database.reads import ReadPool
from app.exceptions import NotAuthenticated, PermissionDenied
from app.models.models import AuthenticatedUser
from app.schema.common import MAX_MONEY, MAX_OFFSET, storable_text
from app.schema.items import ItemSortField
from app.schema.users import UserSortField
from app.services.items import ItemFilters
from app.services.paging import Paging, SortOrder

TOKEN_URL = "/api/token/"

# auto_error=False: a missing header gets our own 401 body and header.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    description="Log in with your email as the *username*.",
)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in open_session(request.app.state.session_factory):
        yield session


async def get_reader(request: Request) -> ReadPool:
    """For reads: the read pool's autocommit connections (app/database/reads.py)."""
    reader: ReadPool = request.app.state.reader
    return reader


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReaderDep = Annotated[ReadPool, Depends(get_reader)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> AuthenticatedUser:
    """Every authenticated request runs this: it reads the app's state itself
    rather than through ReaderDep and SettingsDep, as each sub-dependency costs
    FastAPI a resolution per request."""
    if not token:
        raise NotAuthenticated("Not authenticated")
    state = request.app.state
    return await auth_service.user_from_access_token(
        reader=state.reader, settings=state.settings, token=token
    )


CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]


async def get_current_admin(user: CurrentUser) -> AuthenticatedUser:
    if not user.is_superuser:
        raise PermissionDenied()
    return user


AdminUser = Annotated[AuthenticatedUser, Depends(get_current_admin)]


async def get_paging(
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1–100.")] = 20,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description=f"How many to skip, 0–{MAX_OFFSET}.")
    ] = 0,
) -> Paging:
    return Paging(limit=limit, offset=offset)


PagingDep = Annotated[Paging, Depends(get_paging)]


async def get_item_order(
    sort: Annotated[
        ItemSortField,
        Query(description="`name`, `price` or `created_at`; a leading `-` sorts descending."),
    ] = "-created_at",
) -> SortOrder:
    return SortOrder(sort)


ItemOrderDep = Annotated[SortOrder, Depends(get_item_order)]


async def get_user_order(
    sort: Annotated[
        UserSortField,
        Query(description="`email` or `created_at`; a leading `-` sorts descending."),
    ] = "created_at",
) -> SortOrder:
    return SortOrder(sort)


UserOrderDep = Annotated[SortOrder, Depends(get_user_order)]


async def get_item_filters(
    q: Annotated[
        str | None,
        Query(
            min_length=1, max_length=200, description="Substring of name or description, any case."
        ),
        AfterValidator(storable_text),
    ] = None,
    tag: Annotated[
        str | None,
        Query(min_length=1, max_length=50, description="Has this tag."),
        AfterValidator(storable_text),
    ] = None,
    # Bounded like the NUMERIC(12,2) column they are compared with.
    min_price: Annotated[
        Decimal | None,
        Query(ge=0, le=MAX_MONEY, decimal_places=2, description="Price at least this."),
    ] = None,
    max_price: Annotated[
        Decimal | None,
        Query(ge=0, le=MAX_MONEY, decimal_places=2, description="Price at most this."),
    ] = None,
) -> ItemFilters:
    if min_price is not None and max_price is not None and min_price > max_price:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "min_price"),
                    "msg": "min_price must not exceed max_price",
                    "input": str(min_price),
                }
            ]
        )
    return ItemFilters(q=q, tag=tag, min_price=min_price, max_price=max_price)


ItemFiltersDep = Annotated[ItemFilters, Depends(get_item_filters)]
