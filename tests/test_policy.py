"""app/policy.py: the permissions, the viewer, the item scope."""

import dataclasses
import re
import uuid
from datetime import UTC, datetime

import pytest

from app.dependencies import Requirement, requires
from app.exceptions import PermissionDenied
from app.models import AuthenticatedUser
from app.policy import (
    ADMIN_PERMISSIONS,
    DESCRIPTIONS,
    OWN_PERMISSIONS,
    ItemScope,
    Permission,
    item_scope,
    parse_permission,
    viewer_of,
)


def user(*, superuser: bool) -> AuthenticatedUser:
    return AuthenticatedUser(
        id=7,
        email="ada@example.com",
        full_name=None,
        hashed_password="x",
        is_active=True,
        is_superuser=superuser,
        session_epoch=0,
        is_verified=True,
        created_at=datetime.now(UTC),
        session_id=uuid.uuid4(),
    )


def test_permissions_are_named_resource_action_and_described() -> None:
    for permission in Permission:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", permission.value), permission
        assert permission.description == DESCRIPTIONS[permission]
    assert set(DESCRIPTIONS) == set(Permission)


def test_everyone_holds_the_own_things_permissions_and_an_admin_all() -> None:
    assert {p.value for p in OWN_PERMISSIONS} == {
        "profile.read",
        "profile.write",
        "items.read",
        "items.write",
    }
    assert ADMIN_PERMISSIONS == set(Permission)
    someone, admin = user(superuser=False), user(superuser=True)
    assert viewer_of(someone).permissions == OWN_PERMISSIONS
    assert viewer_of(admin).permissions == ADMIN_PERMISSIONS
    viewer = viewer_of(someone)
    assert (viewer.id, viewer.is_active, viewer.session_id) == (7, True, someone.session_id)


def test_item_scope_is_the_viewers_own_unless_they_reach_all() -> None:
    someone, admin = viewer_of(user(superuser=False)), viewer_of(user(superuser=True))
    for write in (False, True):
        assert item_scope(someone, write=write) is ItemScope.OWN
        assert item_scope(admin, write=write) is ItemScope.ALL
    assert ItemScope.OWN.values(someone) == {"owner_id": 7}
    assert ItemScope.ALL.values(admin) == {}
    assert ItemScope.ALL.where is None
    assert str(ItemScope.OWN.where) == "items.owner_id = :owner_id"


@pytest.mark.parametrize("permission", list(Permission))
async def test_a_requirement_yields_the_viewer_or_refuses(permission: Permission) -> None:
    requirement = requires(permission)
    assert isinstance(requirement, Requirement)
    assert (await requirement(user(superuser=True))).can(permission)
    someone = user(superuser=False)
    if permission in OWN_PERMISSIONS:
        assert (await requirement(someone)).id == someone.id
    else:
        with pytest.raises(PermissionDenied):
            await requirement(someone)


def test_roles_add_their_permissions_to_the_own_things() -> None:
    holder = dataclasses.replace(
        user(superuser=False), role_permissions=("users.read", "audit.read", "users.read")
    )
    assert viewer_of(holder).permissions == OWN_PERMISSIONS | {
        Permission.USERS_READ,
        Permission.AUDIT_READ,
    }
    # A name the code no longer knows grants nothing.
    gone = dataclasses.replace(holder, role_permissions=("users.obliterate",))
    assert viewer_of(gone).permissions == OWN_PERMISSIONS
    admin = dataclasses.replace(user(superuser=True), role_permissions=("users.read",))
    assert viewer_of(admin).permissions == ADMIN_PERMISSIONS


def test_a_permission_name_is_parsed_or_refused() -> None:
    assert parse_permission("roles.manage") is Permission.ROLES_MANAGE
    with pytest.raises(ValueError, match=r"one of profile\.read"):
        parse_permission("roles.own")
