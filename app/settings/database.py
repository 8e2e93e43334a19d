"""Postgres: where it is, who the app is there, and each worker's pools."""

from typing import ClassVar

from pydantic import SecretStr, field_validator
from sqlalchemy.engine import URL

from app.settings.base import SettingsGroup
from app.settings.declaration import setting
from app.settings.types import DEFAULT_POSTGRES_PORT, split_host_port


class DatabaseSettings(SettingsGroup):
    """The user's own names: POSTGRES_URL (host:port), POSTGRES_USER, POSTGRES_PW,
    POSTGRES_DB. Each worker has two pools: one for transactions (every write) and
    one for reads; each worker may open DB_POOL_SIZE + DB_MAX_OVERFLOW +
    DB_READ_POOL_SIZE connections."""

    TITLE: ClassVar[str] = "Database"

    POSTGRES_URL: str = setting(
        f"localhost:{DEFAULT_POSTGRES_PORT}",
        "host:port of Postgres. Inside compose the app is pointed at the db service.",
    )
    POSTGRES_USER: str = setting("app", "The database user; compose gives it to the db image too.")
    POSTGRES_PW: SecretStr = setting(
        SecretStr(""),
        "Its password. Any characters work (the URL is built with SQLAlchemy's "
        "URL.create). `make up` generates one.",
        required_in_production=True,
    )
    POSTGRES_DB: str = setting("app", "The database.")
    # Overflow churns connections (a TCP connect and a SCRAM handshake each) under
    # steady load, so the default keeps them all.
    DB_POOL_SIZE: int = setting(
        10, "Transaction pool per worker process (every write): connections kept open.", ge=1
    )
    DB_MAX_OVERFLOW: int = setting(
        0,
        "Extra transaction connections opened under a burst and closed again when returned.",
        ge=0,
    )
    DB_READ_POOL_SIZE: int = setting(
        10, "Read pool per worker process (autocommit: accounts, lists, single items).", ge=1
    )
    DB_POOL_TIMEOUT: float = setting(
        5.0,
        "Seconds to wait for a free pooled connection before answering 503 (retry "
        "shortly); cut to DB_CONNECT_TIMEOUT while the database is unreachable.",
        gt=0,
    )
    DB_CONNECT_TIMEOUT: int = setting(
        2,
        "Seconds to open a database connection (whole seconds, at least 1): a "
        "database that is down fails requests fast.",
        ge=1,
    )

    LIST_EXACT_TOTAL_LIMIT: int = setting(
        10_000,
        "Lists count their matches exactly up to this many; beyond it `total` is the "
        "planner's estimate and `total_exact` is false (an exact count of millions of "
        "rows costs seconds on every page).",
        ge=1,
    )

    LIST_COUNT_TIMEOUT: float = setting(
        0.01,
        "Seconds a list may spend counting its matches exactly (up to "
        "LIST_EXACT_TOTAL_LIMIT); past it `total` is the planner's estimate and "
        "`total_exact` is false, so a costly count never slows a page.",
        gt=0,
    )

    @field_validator("POSTGRES_URL")
    @classmethod
    def _check_host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @property
    def postgres_host(self) -> str:
        return split_host_port(self.POSTGRES_URL)[0]

    @property
    def postgres_port(self) -> int:
        return split_host_port(self.POSTGRES_URL)[1]

    def database_url(self, driver: str = "postgresql+psycopg") -> URL:
        """The URL is assembled from parts so any password character is safe."""
        return URL.create(
            drivername=driver,
            username=self.POSTGRES_USER,
            password=self.POSTGRES_PW.get_secret_value() or None,
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.POSTGRES_DB,
        )
