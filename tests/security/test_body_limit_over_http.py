"""The body limit over a real socket (uvicorn): the client gets the 413 and its
JSON detail, not a reset connection, whether the body declares its length or
comes chunked, and the server carries on."""

from collections.abc import Iterator

import httpx
import pytest

from app.config import Settings
from tests.security.live_server import LiveServer, serve

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[LiveServer]:
    with serve(settings) as server:
        yield server


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 65_536):
        yield b"a" * 65_536


@pytest.mark.parametrize("size", [2 * MIB, 16 * MIB])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversized_body_gets_a_413_over_http(live: LiveServer, framing: str, size: int) -> None:
    content = b"a" * size if framing == "content-length" else _chunks(size)
    with httpx.Client() as http:
        response = http.post(
            f"{live.base_url}/api/auth/register",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json() == {"detail": f"Request body too large: at most {MIB} bytes"}
        assert ("content-length" in response.request.headers) == (framing == "content-length")
        assert http.get(f"{live.base_url}/api/health").status_code == 200
