"""The one place configuration is read: arguments, the environment, then `.env`;
NAME_FILE reads any setting NAME from a file (Docker secrets, SettingFiles)."""

import logging
from collections.abc import Mapping
from datetime import timedelta
from email.utils import formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    EmailStr,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import URL

from app.signing_keys import (
    Algorithm,
    KeyRing,
    UnusableKey,
    build_keyring,
    load_private_key,
    load_public_keys,
)

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


def _origin(entry: str) -> str:
    """An origin as browsers send it in `Origin`: scheme://host[:port], no path
    (a trailing slash is dropped: it would never match)."""
    origin = entry.rstrip("/")
    parts = urlsplit(origin)
    try:
        parts.port  # noqa: B018 (raises ValueError unless a number in range)
    except ValueError:
        parts = parts._replace(scheme="")  # refused below
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "*" in origin
        or "@" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"BACKEND_CORS_ORIGINS: {entry!r} is not an origin: give scheme://host[:port], "
            "no path and no wildcard (credentialed CORS needs explicit origins)"
        )
    return origin


class SettingFileError(ValueError):
    """A NAME_FILE that cannot be used. The message names the variable and the
    path, never the file's content (it is a secret)."""


def read_setting_file(name: str, path: str | Path) -> str:
    """NAME_FILE's content is NAME's value, less the one newline that
    `echo value > file` ends it with; nothing else is stripped (a password may
    end in spaces)."""
    variable = f"{name}_FILE"
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingFileError(f"{variable}: cannot read {path}: {reason}") from None
    except UnicodeDecodeError:
        raise SettingFileError(f"{variable}: {path} is not UTF-8 text") from None
    for newline in ("\r\n", "\n"):
        if text.endswith(newline):
            return text.removesuffix(newline)
    return text


def _is_set(value: object) -> bool:
    """As the environment reads (env_ignore_empty): empty is not set."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is not None and value != "" and value != []


class SettingFiles(PydanticBaseSettingsSource):
    """Docker secrets (and Kubernetes', systemd's credentials) arrive as files:
    as in the official images, NAME_FILE names a file whose content is NAME's
    value, for every setting. Read once, when the settings load, wherever NAME
    itself may be given: arguments, the environment, `.env` (first wins). Both
    NAME and NAME_FILE set is refused: which one should win is ambiguous."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: InitSettingsSource,
        env: EnvSettingsSource,
        dotenv: EnvSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        # The environment's and .env's names are lower case (not case sensitive).
        self._given: list[Mapping[str, Any]] = [init.init_kwargs, env.env_vars, dotenv.env_vars]

    def _first(self, name: str) -> Any:
        for given in self._given:
            for key in (name, name.lower()):
                if _is_set(given.get(key)):
                    return given[key]
        return None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            path = self._first(f"{name}_FILE")
            if path is None:
                continue
            if self._first(name) is not None:
                raise SettingFileError(
                    f"{name} and {name}_FILE are both set (environment, .env or "
                    "arguments): keep one"
                )
            values[name] = read_setting_file(name, path)
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        # A settings error names the setting, never echoes the values: they hold keys.
        hide_input_in_errors=True,
    )

    ENVIRONMENT: Environment = "local"
    PROJECT_NAME: str = "FastAPI Stack"
    # Any case (gunicorn's own setting is lower case): stored upper case for logging.
    LOG_LEVEL: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
    ] = "INFO"

    SECRET_KEY: SecretStr = SecretStr(EXAMPLE_SECRET_KEY)
    # Signing keys (app/signing_keys.py; README "Rotating secrets"). Every token
    # names its key (`kid`); a previous key still verifies the tokens it signed.
    SECRET_KEY_PREVIOUS: Annotated[list[SecretStr], NoDecode] = []
    JWT_ALGORITHM: Algorithm = "HS256"
    # EdDSA: the Ed25519 private key as PEM (or JWT_PRIVATE_KEY_FILE, as any
    # setting: SettingFiles); the public keys of retired ones (PEM blocks).
    JWT_PRIVATE_KEY: SecretStr | None = None
    JWT_PUBLIC_KEYS_PREVIOUS: str = ""
    # False only while tokens issued before key ids existed must keep working:
    # a token without a kid is then checked against the HMAC keys (HS256).
    JWT_REQUIRE_KID: bool = True
    # Built from the settings above when they load (see _load_signing_keys).
    _keyring: KeyRing = PrivateAttr()
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

    # The public name: links in mails point at https://DOMAIN/… (Traefik routes it).
    DOMAIN: str = "stack.localhost"
    # Outgoing mail (app/mail/, app/services/outbox.py). Empty SMTP_HOST: mails
    # stay queued in the outbox (a warning says so) until a worker has a host.
    SMTP_HOST: str = ""
    # 587 with starttls (submission), 465 with tls (implicit TLS), 25/1025 none.
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USER: str = ""
    SMTP_PASSWORD: SecretStr = SecretStr("")
    SMTP_SECURITY: Literal["starttls", "tls", "none"] = "starttls"
    # PEM file of the CA(s) to verify the SMTP server with instead of the system's
    # (a relay with a private CA); empty: the system's.
    SMTP_CA_FILE: str = ""
    # Seconds for each SMTP network operation (connect, each command).
    SMTP_TIMEOUT: float = Field(default=10.0, gt=0)
    # The From header: an address, optionally with a name ("Name <a@b.example>");
    # empty: "PROJECT_NAME <noreply@DOMAIN>".
    EMAILS_FROM: str = ""
    # Delivery: attempts per mail before it is given up (last_error kept), the
    # first retry's delay (doubling each time, with jitter, at most an hour), and
    # how often each worker looks for mails queued by the others.
    MAIL_MAX_ATTEMPTS: int = Field(default=8, ge=1)
    MAIL_RETRY_DELAY: PositiveDuration = timedelta(seconds=30)
    MAIL_POLL_INTERVAL: PositiveDuration = timedelta(seconds=2)
    # Single-use links: how long a password-reset and a verification link work.
    PASSWORD_RESET_TTL: PositiveDuration = timedelta(minutes=30)
    EMAIL_VERIFY_TTL: PositiveDuration = timedelta(days=2)
    # False: an unverified account logs in (`is_verified: false` in the user).
    # True: its login is a 403 saying why, and the link can be requested again.
    LOGIN_REQUIRES_VERIFIED_EMAIL: bool = False
    # Mails anyone may ask for (password recovery, verification resend), counted
    # per address and per client address within the window; then 429.
    MAIL_REQUESTS_PER_EMAIL: int = Field(default=3, ge=1)
    MAIL_REQUESTS_PER_CLIENT: int = Field(default=20, ge=1)
    MAIL_REQUEST_WINDOW: PositiveDuration = timedelta(hours=1)

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

    # --- added by issue 17 ---
    # Failed logins of all this account's known devices together, per LOGIN_ACCOUNT_FAILURE_WINDOW.
    LOGIN_DEVICE_ACCOUNT_MAX_FAILURES: int = Field(default=20, ge=1)
    # Mails of any kind to one address, from all flows and clients, per MAIL_REQUEST_WINDOW.
    MAIL_PER_ADDRESS_MAX: int = Field(default=10, ge=1)
    # How long the "this wasn't me" link mailed to the old address on an email change works.
    EMAIL_CHANGE_UNDO_TTL: PositiveDuration = timedelta(days=7)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(init_settings, InitSettingsSource)
        assert isinstance(env_settings, EnvSettingsSource)
        assert isinstance(dotenv_settings, EnvSettingsSource)
        files = SettingFiles(settings_cls, init_settings, env_settings, dotenv_settings)
        return files, init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("BACKEND_CORS_ORIGINS", "SECRET_KEY_PREVIOUS", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """A list in one variable: comma-separated, spaces and empty entries ignored."""
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("BACKEND_CORS_ORIGINS")
    @classmethod
    def _explicit_origins(cls, origins: list[str]) -> list[str]:
        """CORS allows credentials (the browser sends its cookie session): every
        origin listed may read answers as the user, so each is named; `*` would
        make Starlette echo any origin back, credentials allowed."""
        return [_origin(entry) for entry in origins]

    @field_validator("EMAILS_FROM")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        if value and "@" not in parseaddr(value)[1]:
            raise ValueError("EMAILS_FROM is an address, optionally 'Name <address>'")
        return value

    @property
    def emails_from(self) -> str:
        return self.EMAILS_FROM or formataddr((self.PROJECT_NAME, f"noreply@{self.DOMAIN}"))

    @field_validator("POSTGRES_URL")
    @classmethod
    def _check_host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @model_validator(mode="after")
    def _load_signing_keys(self) -> Self:
        """Once, at load: a key that cannot be read stops start-up, naming the setting."""
        self._keyring = self._read_keyring()
        return self

    def _read_keyring(self) -> KeyRing:
        private_key = self.JWT_PRIVATE_KEY
        private_pem = private_key.get_secret_value() if private_key is not None else ""
        if private_pem and self.JWT_ALGORITHM != "EdDSA":
            raise UnusableKey("JWT_PRIVATE_KEY is set but JWT_ALGORITHM is not EdDSA")
        public_pem = self.JWT_PUBLIC_KEYS_PREVIOUS
        return build_keyring(
            algorithm=self.JWT_ALGORITHM,
            secret=self.SECRET_KEY.get_secret_value(),
            previous_secrets=[key.get_secret_value() for key in self.SECRET_KEY_PREVIOUS],
            private_key=load_private_key(private_pem, "JWT_PRIVATE_KEY") if private_pem else None,
            previous_public_keys=load_public_keys(public_pem, "JWT_PUBLIC_KEYS_PREVIOUS"),
            require_kid=self.JWT_REQUIRE_KID,
        )

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """model_copy runs no validator: the copy reads its own keys, so a copy with
        other key settings never signs or verifies with the original's. It reads no
        NAME_FILE either (that is loading): settings only, or it would be a no-op."""
        unknown = sorted(set(update or {}) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"model_copy updates settings only, not {unknown}")
        copy = super().model_copy(update=update, deep=deep)
        copy._keyring = copy._read_keyring()
        return copy

    @model_validator(mode="after")
    def _refuse_example_secrets_in_production(self) -> Self:
        problems: list[str] = []
        # Even with EdDSA: switching back to HS256 must never sign with the example.
        for name, key in [
            ("SECRET_KEY", self.SECRET_KEY.get_secret_value()),
            *(("SECRET_KEY_PREVIOUS", key.get_secret_value()) for key in self.SECRET_KEY_PREVIOUS),
        ]:
            problem = (
                f"{name} must hold random values of at least "
                f"{MIN_SECRET_KEY_LENGTH} characters, not the example"
            )
            weak = key == EXAMPLE_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH
            if weak and problem not in problems:
                problems.append(problem)
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
