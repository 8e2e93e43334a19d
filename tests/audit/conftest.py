from typing import Any

import pytest
from fastapi import FastAPI


@pytest.fixture(autouse=True)
def _tables_emptied_after(app: FastAPI) -> None:
    """Some tests here run apps of their own; asking for the suite's `app` makes
    the suite empty the tables after each (tests/conftest.py)."""


@pytest.fixture
def root(admin_tokens: dict[str, Any]) -> str:
    """The access token of an admin (every permission, audit.read among them)."""
    token: str = admin_tokens["access_token"]
    return token
