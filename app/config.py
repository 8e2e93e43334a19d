"""The one place configuration is read: the environment, then `.env`."""

import logging
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import (
    BeforeValidator,
    EmailStr,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL

logger = logging.getLogger(__name__)

# Values shipped in .env.example: fine on a laptop, refused in production.
EXAMPLE_SECRET_KEY = "changethis-example-secret-key-do-not-use-in-production"
EXAMPLE_SUPERUSER_PASSWORD = "changethis-superuser"
MIN_SECRET_KEY_LENGTH = 32
DEFAULT_POSTGRES_PORT = 5432

Environment = Literal["local", "test", "staging", "production"]


def _seconds_or_iso(value: object) -> object:
    """Environment values are strings: "900" means seconds, "PT15M" is ISO 8601."""
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        return float(value)
    return value


PositiveDuration = Annotated[timedelta, BeforeValidator(_seconds_or_iso), Field(gt=timedelta(0))]
Duration = Annotated[timedelta, BeforeValidator(_seconds_or_iso), Field(ge=timedelta(0))]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    ENVIRONMENT: Environment = "local"
    PROJECT_NAME: str = "FastAPI Stack"
    # Any case (gunicorn's own setting is lower case): stored upper case for logging.
    LOG_LEVEL: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
    ] = "INFO"

    SECRET_KEY: SecretStr = SecretStr(EXAMPLE_SECRET_KEY)
    ACCESS_TOKEN_TTL: PositiveDuration = timedelta(minutes=15)
    REFRESH_TOKEN_TTL: PositiveDuration = timedelta(days=14)
    JWT_ISSUER: str = "fastapi-stack"
    JWT_AUDIENCE: str = "fastapi-stack-api"
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=31)
    # bcrypt admission per worker process: this many checks at once, this many
    # waiting; beyond that a 503 with Retry-After (see app/auth/passwords.py).
    PASSWORD_HASH_THREADS: int = Field(default=1, ge=1)
    PASSWORD_HASH_QUEUE: int = Field(default=16, ge=0)
    # Login throttling (app/auth/throttle.py): per email and client (or per known
    # device), and per account whatever the client (ASVS: <= 100 an hour).
    LOGIN_MAX_FAILURES: int = Field(default=5, ge=1)
    LOGIN_FAILURE_WINDOW: PositiveDuration = timedelta(minutes=15)
    LOGIN_ACCOUNT_MAX_FAILURES: int = Field(default=100, ge=1)
    LOGIN_ACCOUNT_FAILURE_WINDOW: PositiveDuration = timedelta(hours=1)
    # A browser or app that logged in before carries a device cookie: its own
    # failures count against it alone, so nobody else's failures lock it out.
    DEVICE_TOKEN_TTL: PositiveDuration = timedelta(days=365)
    # A refresh token presented again this soon after it was spent, from the same
    # client address, is refused without revoking its session (a double submit,
    # not a theft). 0 turns the grace off.
    REFRESH_REUSE_GRACE: Duration = timedelta(seconds=2)
    # The cleanup sweep (app/services/maintenance.py), run inside the app by one
    # worker at a time: how often (0 turns it off), and how long ended sessions
    # and expired refresh tokens are kept (a record of who used an account, when).
    SWEEP_INTERVAL: Duration = timedelta(hours=1)
    SESSION_RETENTION: Duration = timedelta(days=7)

    FIRST_SUPERUSER_EMAIL: EmailStr | None = None
    FIRST_SUPERUSER_PASSWORD: SecretStr | None = None
    BACKEND_CORS_ORIGINS: Annotated[list[str], NoDecode] = []

    # The user's own names: host:port, user, password, database.
    POSTGRES_URL: str = f"localhost:{DEFAULT_POSTGRES_PORT}"
    POSTGRES_USER: str = "app"
    POSTGRES_PW: SecretStr = SecretStr("")
    POSTGRES_DB: str = "app"
    # Each worker has two pools: one for transactions (SQLAlchemy sessions: every
    # write) and one for reads (app/database/reads.py). Connections kept open, and
    # extra ones opened under a burst and closed again when returned. Overflow
    # churns connections (a TCP connect and a SCRAM handshake each) under steady
    # load, so the default keeps them all.
    DB_POOL_SIZE: int = Field(default=10, ge=1)
    DB_MAX_OVERFLOW: int = Field(default=0, ge=0)
    DB_READ_POOL_SIZE: int = Field(default=10, ge=1)
    DB_POOL_TIMEOUT: float = Field(default=5.0, gt=0)
    # Seconds to open a connection: a database that is down fails requests fast.
    DB_CONNECT_TIMEOUT: int = Field(default=2, ge=1)

    # Larger request bodies get 413 (Traefik applies the same variable in the stack).
    MAX_REQUEST_BODY_BYTES: int = Field(default=1_048_576, ge=1)

    @field_validator("BACKEND_CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("POSTGRES_URL")
    @classmethod
    def _check_host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @model_validator(mode="after")
    def _refuse_example_secrets_in_production(self) -> Self:
        key = self.SECRET_KEY.get_secret_value()
        problems: list[str] = []
        if key == EXAMPLE_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH:
            problems.append(
                f"SECRET_KEY must be a random value of at least "
                f"{MIN_SECRET_KEY_LENGTH} characters, not the example"
            )
        superuser_pw = self.FIRST_SUPERUSER_PASSWORD
        if superuser_pw and superuser_pw.get_secret_value() == EXAMPLE_SUPERUSER_PASSWORD:
            problems.append("FIRST_SUPERUSER_PASSWORD must not be the example value")
        if self.FIRST_SUPERUSER_EMAIL and not superuser_pw:
            problems.append("FIRST_SUPERUSER_EMAIL is set but FIRST_SUPERUSER_PASSWORD is not")
        if not problems:
            return self
        if self.ENVIRONMENT == "production":
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        for problem in problems:
            logger.warning("%s (tolerated because ENVIRONMENT=%s)", problem, self.ENVIRONMENT)
        return self

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


def split_host_port(value: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` → (host, port)."""
    text = value.strip()
    if "://" in text or "@" in text or "/" in text:
        raise ValueError("POSTGRES_URL is host:port (e.g. localhost:5432), not a full URL")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError("POSTGRES_URL has no host")
    if not port_text:
        return host, DEFAULT_POSTGRES_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"POSTGRES_URL has an invalid port: {port_text!r}")
    return host, int(port_text)


@lru_cache
def get_settings() -> Settings:
    return Settings()
