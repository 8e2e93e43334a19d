import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from devtools.embedded_postgres import EmbeddedPostgres, free_port
from tests.conftest import make_settings


async def test_liveness_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_is_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_is_503_when_the_database_does_not_answer(
    postgres: EmbeddedPostgres,
) -> None:
    nothing_listens = make_settings(postgres, POSTGRES_URL=f"127.0.0.1:{free_port()}")
    app = create_app(nothing_listens)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/api/health/ready")
            alive = await http.get("/api/health")
    assert ready.status_code == 503
    assert ready.json() == {"detail": "Database unavailable"}
    assert alive.status_code == 200
