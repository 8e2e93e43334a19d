"""Postgres: where it is, who the app is there, and each worker's pools."""

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import SecretStr, field_validator, model_validator
from sqlalchemy.engine import URL

from app.settings.base import SettingsGroup
from app.settings.declaration import setting
from app.settings.types import DEFAULT_POSTGRES_PORT, split_host_port

# psycopg's own default (Connection.prepare_threshold).
DEFAULT_PREPARE_THRESHOLD = 5
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
# The modes that check the server's certificate against POSTGRES_SSLROOTCERT.
VERIFYING_MODES = ("verify-ca", "verify-full")
# libpq's own word for "the operating system's trusted CAs" (libpq 16 and later).
SYSTEM_CAS = "system"
# Hosts that are the stack's own Postgres or this machine: TLS is optional there,
# anywhere else production wants the server verified.
LOCAL_DATABASE_HOSTS = ("db", "localhost", "127.0.0.1", "::1")


class DatabaseSettings(SettingsGroup):
    """The user's own names: POSTGRES_URL (host:port), POSTGRES_USER, POSTGRES_PW,
    POSTGRES_DB. Each worker has two pools: one for transactions (every write) and
    one for reads; each worker may open DB_POOL_SIZE + DB_MAX_OVERFLOW +
    DB_READ_POOL_SIZE connections, to Postgres or, with DB_POOLER_URL, to a
    transaction pooler in front of it (migrations still go to Postgres).

    A managed Postgres (RDS, Cloud SQL, Neon, Supabase...): POSTGRES_URL='its
    host:5432', POSTGRES_SSLMODE='verify-full', POSTGRES_SSLROOTCERT = your
    provider's CA bundle, and compose without its db service
    (COMPOSE_FILE='compose.yaml:compose.external-db.yaml'; docs/deploy.md). The
    app, its migrations and `make backup`/`make restore` all connect with these."""

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
    POSTGRES_SSLMODE: SslMode = setting(
        "prefer",
        "TLS to Postgres, as libpq's sslmode: disable | allow | prefer | require | "
        "verify-ca | verify-full. Only verify-full checks both the certificate (against "
        "POSTGRES_SSLROOTCERT) and the host name; prefer (the stack's own db, on its "
        "internal network) encrypts when the server offers TLS and verifies nothing. "
        "Production refuses anything but verify-full for a database outside the stack "
        "(a host other than db or this machine) unless POSTGRES_ALLOW_UNVERIFIED_TLS.",
    )
    POSTGRES_SSLROOTCERT: str = setting(
        "",
        "PEM file of the CA(s) the database's certificate must chain to (your "
        "provider's bundle: RDS global-bundle.pem, Cloud SQL server-ca.pem, Supabase's "
        "CA), or 'system' for the operating system's public CAs. Needed by verify-ca "
        "and verify-full. compose.external-db.yaml mounts this file into the "
        "containers (a path on the host, relative to compose.yaml).",
    )
    POSTGRES_ALLOW_UNVERIFIED_TLS: bool = setting(
        False,
        "'true': production accepts a POSTGRES_SSLMODE weaker than verify-full for a "
        "database outside the stack (a private network you trust, or Cloud SQL by IP "
        "with verify-ca, whose certificates name the instance, not the host).",
    )
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
    DB_POOLER_URL: str = setting(
        "",
        "host:port of a transaction pooler (PgBouncer, pool_mode=transaction) in front "
        "of Postgres, for both of each worker's pools; then they prepare no statements "
        "on the server (a pooled server connection is not the one that prepared them). "
        "Empty: straight to POSTGRES_URL. Migrations and backups always go to "
        "POSTGRES_URL. In compose: 'pgbouncer:6432' with COMPOSE_PROFILES "
        "holding 'pgbouncer' (docs/deploy.md, Many replicas: the pooler).",
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

    LIST_RANK_SPACING: int = setting(
        10_000,
        "The list of all items keeps every this-many-th item of each sort as an anchor "
        "(built by the sweep), so a deep `offset` walks at most about this many index "
        "entries from the nearest one instead of all it skips; smaller offsets are "
        "walked from the start. Applies at the next build.",
        ge=1,
    )

    LIST_RANK_MAX_CHANGES: int = setting(
        20_000,
        "Item changes (inserts, deletes, sort-column updates) logged since the anchors "
        "were built up to which a deep `offset` still uses them (each such page reads "
        "the whole log); past it offsets are walked again. The sweep builds the "
        "anchors again once the log holds half this many.",
        ge=0,
    )

    LIST_RANK_MIN_ROWS: int = setting(
        100_000,
        "The sweep builds the items' rank anchors only once the table holds about "
        "this many rows (the planner's estimate): below it, walking an offset is "
        "fast enough.",
        ge=0,
    )

    @field_validator("POSTGRES_URL")
    @classmethod
    def _check_host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("DB_POOLER_URL")
    @classmethod
    def _check_pooler_host_port(cls, value: str) -> str:
        if value:
            try:
                split_host_port(value)
            except ValueError as exc:
                raise ValueError(str(exc).replace("POSTGRES_URL", "DB_POOLER_URL")) from exc
        return value

    @model_validator(mode="after")
    def _check_root_certificate(self) -> Self:
        """Said at start-up, not at every connection attempt."""
        root = self.POSTGRES_SSLROOTCERT
        if self.POSTGRES_SSLMODE in VERIFYING_MODES and not root:
            raise ValueError(
                f"POSTGRES_SSLMODE={self.POSTGRES_SSLMODE} needs POSTGRES_SSLROOTCERT: the "
                "CA file of your database provider (or 'system' for public CAs)"
            )
        if root and root != SYSTEM_CAS and not Path(root).is_file():
            raise ValueError(
                f"POSTGRES_SSLROOTCERT: {root} is not a readable file (the CA of the "
                "database's certificate, as a path inside the app's container)"
            )
        return self

    @property
    def database_is_local(self) -> bool:
        """The stack's own db service, or this machine: no network to cross."""
        return self.postgres_host.lower() in LOCAL_DATABASE_HOSTS

    def database_tls_problem(self) -> str | None:
        """Why production should not connect as configured, or None."""
        if (
            self.database_is_local
            or self.POSTGRES_SSLMODE == "verify-full"
            or self.POSTGRES_ALLOW_UNVERIFIED_TLS
        ):
            return None
        return (
            f"the database at {self.postgres_host} is outside the stack and "
            f"POSTGRES_SSLMODE={self.POSTGRES_SSLMODE} does not verify who answers (a "
            "machine in between could read the password and the data): set "
            "POSTGRES_SSLMODE=verify-full with POSTGRES_SSLROOTCERT, or "
            "POSTGRES_ALLOW_UNVERIFIED_TLS=true for a network you trust"
        )

    @property
    def postgres_host(self) -> str:
        return split_host_port(self.POSTGRES_URL)[0]

    @property
    def postgres_port(self) -> int:
        return split_host_port(self.POSTGRES_URL)[1]

    @property
    def through_pooler(self) -> bool:
        """The pools talk to a transaction pooler, not to Postgres itself."""
        return bool(self.DB_POOLER_URL)

    def database_url(self, driver: str = "postgresql+psycopg") -> URL:
        """Postgres itself (migrations, backups, the tests' own connections). The
        URL is assembled from parts so any password character is safe. Its TLS
        parameters reach every connection made from it: both pools (pool_url keeps
        them), the migrations, the readiness probe."""
        tls: dict[str, str] = {"sslmode": self.POSTGRES_SSLMODE}
        if self.POSTGRES_SSLROOTCERT:
            tls["sslrootcert"] = self.POSTGRES_SSLROOTCERT
        return URL.create(
            drivername=driver,
            username=self.POSTGRES_USER,
            password=self.POSTGRES_PW.get_secret_value() or None,
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.POSTGRES_DB,
            query=tls,
        )

    def pool_url(self, driver: str = "postgresql+psycopg") -> URL:
        """Where the worker's pools connect: the pooler when there is one (same user,
        password and database: it passes them on), else Postgres."""
        if not self.through_pooler:
            return self.database_url(driver)
        host, port = split_host_port(self.DB_POOLER_URL)
        return self.database_url(driver).set(host=host, port=port)

    @property
    def prepare_threshold(self) -> int | None:
        """psycopg's: prepare a statement on the server after it ran this often (its
        default, 5), or never (None). Through a transaction pooler the next
        transaction may run on another server connection, where the statement was
        never prepared; PgBouncer 1.21+ can track them (max_prepared_statements), but
        Debian 12's 1.18 and several managed poolers cannot, so the app does not ask."""
        return None if self.through_pooler else DEFAULT_PREPARE_THRESHOLD
