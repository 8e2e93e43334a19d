"""Readiness follows the schema during a rolling update: a replica whose
migrations have not run yet is not ready (Docker keeps it out of rotation), one
whose schema a later release has migrated past stays ready. On a database of its
own, created and dropped here."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine, text

from app.config import Settings
from app.database.schema_version import release_revisions
from app.main import create_app
from app.prestart import ALEMBIC_INI
from tests.scratch_database import scratch_database

DATABASE = "schema_readiness_test"


@pytest.fixture
def scratch(settings: Settings) -> Iterator[tuple[Config, Engine, Settings]]:
    with scratch_database(settings, DATABASE) as scratch:
        yield scratch


async def readiness(settings: Settings) -> httpx.Response:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get("/api/health/ready")


def set_revision(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_every_migration_file_is_a_revision_and_one_is_the_head() -> None:
    revisions = release_revisions()
    files = list((Path(ALEMBIC_INI).parent / "migrations" / "versions").glob("*.py"))
    assert len(revisions.known) == len(files) > 1
    assert revisions.head in revisions.known


async def test_never_migrated_is_not_ready(scratch: tuple[Config, Engine, Settings]) -> None:
    _, _, settings = scratch
    response = await readiness(settings)
    assert response.status_code == 503
    assert "not migrated yet" in response.json()["detail"]


async def test_ready_at_this_release_head(scratch: tuple[Config, Engine, Settings]) -> None:
    config, _, settings = scratch
    command.upgrade(config, "head")
    response = await readiness(settings)
    assert response.status_code == 200, response.text


async def test_not_ready_while_this_release_migrations_are_pending(
    scratch: tuple[Config, Engine, Settings],
) -> None:
    config, _, settings = scratch
    head = release_revisions().head
    command.upgrade(config, "head")
    command.downgrade(config, "-1")
    response = await readiness(settings)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "migrations pending" in detail
    assert head in detail


async def test_ready_when_a_later_release_migrated_past_this_one(
    scratch: tuple[Config, Engine, Settings],
) -> None:
    """A rollback, or an old replica still serving while the new release's migration
    has run: the revision is unknown here, so it is a later one."""
    config, engine, settings = scratch
    command.upgrade(config, "head")
    set_revision(engine, "9999_from_a_later_release")
    response = await readiness(settings)
    assert response.status_code == 200, response.text


def test_two_heads_are_refused(tmp_path: Path) -> None:
    for name, down in (("a", "None"), ("b", '"a"'), ("c", '"a"')):
        (tmp_path / f"{name}.py").write_text(f'revision: str = "{name}"\ndown_revision = {down}\n')
    with pytest.raises(RuntimeError, match="one migration head"):
        release_revisions(tmp_path)
