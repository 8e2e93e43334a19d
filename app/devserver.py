"""`make dev` / `python -m app.main`: a reloading server on http://127.0.0.1:8000.

If the configured Postgres does not answer, an embedded one is started with its
data in `.local/postgres` (git-ignored), using the same user, password and database.
"""

import asyncio
import atexit
import logging
import os
from pathlib import Path

import uvicorn

from app.config import Settings, get_settings
from app.database.db import create_engine, database_answers
from app.prestart import prepare

logger = logging.getLogger("app.devserver")

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATA_DIR = ROOT / ".local" / "postgres"
HOST, PORT = "127.0.0.1", 8000


async def _answers(settings: Settings) -> bool:
    engine = create_engine(settings)
    try:
        return await database_answers(engine)
    finally:
        await engine.dispose()


def _start_embedded(settings: Settings) -> None:
    from app.database.embedded import EmbeddedPostgres, free_port, port_is_free

    port = settings.postgres_port if port_is_free(settings.postgres_port) else free_port()
    server = EmbeddedPostgres(
        EMBEDDED_DATA_DIR,
        port=port,
        user=settings.POSTGRES_USER,
        password=settings.POSTGRES_PW.get_secret_value(),
        database=settings.POSTGRES_DB,
    )
    server.start()
    # The reloader's worker process reads its settings from the environment.
    os.environ["POSTGRES_URL"] = f"127.0.0.1:{port}"
    get_settings.cache_clear()
    logger.warning(
        "No Postgres answered at %s: started an embedded one on 127.0.0.1:%s "
        "(data: %s, log: %s). It stops when this server stops.",
        settings.POSTGRES_URL,
        port,
        EMBEDDED_DATA_DIR,
        server.log_file,
    )
    atexit.register(server.stop)


def run() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(levelname)s %(name)s: %(message)s")
    if not asyncio.run(_answers(settings)):
        _start_embedded(settings)
        settings = get_settings()
    asyncio.run(prepare(settings, wait_seconds=10))
    logger.warning("API on http://%s:%s — docs at http://%s:%s/docs", HOST, PORT, HOST, PORT)
    uvicorn.run("app.main:app", host=HOST, port=PORT, reload=True, reload_dirs=[str(ROOT / "app")])
