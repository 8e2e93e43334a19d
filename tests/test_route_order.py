"""The routers are included busiest first (app/main.py's ROUTERS), which is only
safe while no route shadows another: every route's own paths must reach it,
whatever came before it in the order."""

import re

import pytest
from fastapi.routing import APIRoute

from app.main import ROUTERS

ROUTES = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def methods_of(route: APIRoute) -> set[str]:
    return route.methods or set()


def example_path(route: APIRoute) -> str:
    """The route's template with each parameter filled in (digits suit every convertor)."""
    return re.sub(r"{[^}]+}", "1", route.path_format)


def first_route_for(path: str, method: str) -> APIRoute | None:
    for route in ROUTES:
        if method in methods_of(route) and route.path_regex.fullmatch(path):
            return route
    return None


def test_the_order_covers_routes_of_every_kind() -> None:
    paths = {route.path_format for route in ROUTES}
    assert {"/api/items/", "/api/users/me", "/api/token/", "/api/health/ready"} <= paths
    assert len(ROUTES) > 40


@pytest.mark.parametrize(
    "route", ROUTES, ids=[f"{sorted(methods_of(r))[0]} {r.path_format}" for r in ROUTES]
)
def test_no_route_is_shadowed_by_one_before_it(route: APIRoute) -> None:
    path = example_path(route)
    for method in methods_of(route):
        first = first_route_for(path, method)
        assert first is route, f"{method} {path} reaches {first.path_format if first else None}"
