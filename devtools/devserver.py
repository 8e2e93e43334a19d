"""`make dev` / `python -m app.main`: a reloading server on http://127.0.0.1:8000.

If the configured Postgres does not answer, an embedded one is started with its
data in `.local/postgres` (git-ignored), using the same user, password and database.
"""

import argparse
import asyncio
import atexit
import hashlib
import logging
import os
from pathlib import Path

import uvicorn

from app.config import Settings, get_settings
from app.database.db import create_engine, database_answers
from app.prestart import prepare

logger = logging.getLogger("devtools.devserver")

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ROOT_FALLBACK_DATA_DIR = Path("/var/lib/fastapi-stack-dev")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.main", description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / ".local" / "postgres",
        help="where the embedded Postgres keeps its data",
    )
    return parser.parse_args()


async def _answers(settings: Settings) -> bool:
    engine = create_engine(settings)
    try:
        return await database_answers(engine)
    finally:
        await engine.dispose()


def _start_embedded(settings: Settings, data_dir: Path) -> None:
    from devtools.embedded_postgres import (
        EmbeddedPostgres,
        free_port,
        port_is_free,
        reachable_by_others,
        runs_as_root,
    )

    if runs_as_root() and not reachable_by_others(data_dir):
        # A checkout in root's private home: the server's own user cannot get in.
        data_dir = ROOT_FALLBACK_DATA_DIR / hashlib.sha256(bytes(ROOT)).hexdigest()[:12]
        logger.warning("the checkout is private to root: keeping the dev database in %s", data_dir)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        data_dir.parent.chmod(0o755)

    port = settings.postgres_port if port_is_free(settings.postgres_port) else free_port()
    server = EmbeddedPostgres(
        data_dir,
        port=port,
        user=settings.POSTGRES_USER,
        password=settings.POSTGRES_PW.get_secret_value(),
        database=settings.POSTGRES_DB,
    )
    server.start()
    atexit.register(server.stop)
    # The reloader's worker process reads its settings from the environment.
    os.environ["POSTGRES_URL"] = f"127.0.0.1:{port}"
    get_settings.cache_clear()
    logger.warning(
        "No Postgres answered at %s: started an embedded one on 127.0.0.1:%s "
        "(data: %s, log: %s). It stops when this server stops.",
        settings.POSTGRES_URL,
        port,
        data_dir,
        server.log_file,
    )


def run() -> None:
    arguments = _arguments()
    settings = get_settings()
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(levelname)s %(name)s: %(message)s")
    if not asyncio.run(_answers(settings)):
        _start_embedded(settings, arguments.data_dir)
        settings = get_settings()
    asyncio.run(prepare(settings, wait_seconds=10))
    port = arguments.port
    logger.warning("API on http://%s:%s — docs at http://%s:%s/docs", HOST, port, HOST, port)
    uvicorn.run("app.main:app", host=HOST, port=port, reload=True, reload_dirs=[str(ROOT / "app")])
