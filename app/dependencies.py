"""Dependencies written once and reused by the routers.

All are `async def`, even those that never await: FastAPI runs a plain `def`
dependency on a worker thread, a hop per dependency per request.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import service as auth_service
from app.config import Settings
from app.database.db import open_session
from app.database.reads import ReadPool
from app.exceptions import NotAuthenticated, PermissionDenied
from app.models.models import AuthenticatedUser

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
