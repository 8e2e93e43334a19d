from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from tests.mail.smtp_server import SmtpServer


@pytest.fixture(autouse=True)
def _tables_emptied_after(app: FastAPI) -> None:
    """Tests here run apps of their own; asking for the suite's `app` makes the
    suite empty the tables after each (tests/conftest.py)."""


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
