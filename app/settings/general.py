"""The application as a whole: where it runs, its name, who may call it from a browser."""

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, EmailStr, SecretStr, field_validator
from pydantic_settings import NoDecode

from app.settings.base import SettingsGroup
from app.settings.declaration import setting
from app.settings.types import origin

Environment = Literal["local", "test", "staging", "production"]
# Values shipped in .env.example: fine on a laptop, refused in production.
EXAMPLE_SUPERUSER_PASSWORD = "changethis-superuser"


def split_commas(value: object) -> object:
    """A list in one variable: comma-separated, spaces and empty entries ignored."""
    if isinstance(value, str):
        return [entry.strip() for entry in value.split(",") if entry.strip()]
    return value


class GeneralSettings(SettingsGroup):
    TITLE: ClassVar[str] = "Application"

    ENVIRONMENT: Environment = setting(
        "local",
        "local | test | staging | production. In production the app refuses to start "
        "with a missing, short or example SECRET_KEY or superuser password.",
    )
    PROJECT_NAME: str = setting("FastAPI Stack", "Name shown in the OpenAPI docs and in mails.")
    # Any case (gunicorn reads the same variable in lower case): stored upper case.
    LOG_LEVEL: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
    ] = setting("INFO", "Log level of the app and gunicorn: DEBUG, INFO, WARNING, ERROR.")
    DOMAIN: str = setting(
        "stack.localhost",
        "The public name of the API: https://<DOMAIN>/docs; mailed links point at "
        "https://<DOMAIN>/. A *.localhost name needs no DNS (browsers and curl resolve "
        "it to this machine). For a server, a name whose DNS A/AAAA record points at "
        "it, with ports 80 and 443 open.",
        required_in_production=True,
    )
    FIRST_SUPERUSER_EMAIL: EmailStr | None = setting(
        None,
        "The first superuser, created at start-up if no user has this email (never "
        "overwritten afterwards).",
        example="admin@example.com",
        required_in_production=True,
    )
    FIRST_SUPERUSER_PASSWORD: SecretStr | None = setting(
        None,
        "Its password; production refuses the example. `make up` generates one.",
        example=EXAMPLE_SUPERUSER_PASSWORD,
        required_in_production=True,
    )
    BACKEND_CORS_ORIGINS: Annotated[list[str], NoDecode] = setting(
        [],
        "Browser origins allowed by CORS, comma-separated (empty: none): "
        "scheme://host[:port] each, never * (they may send the user's cookie session, "
        "so each is named; a wildcard or a path stops start-up).",
        example="http://localhost:5173,https://localhost",
    )
    MAX_REQUEST_BODY_BYTES: int = setting(
        1_048_576,
        "Largest request body accepted (bytes); larger ones get 413 with a JSON "
        "detail, from Traefik in the stack and from the app itself (chunked bodies "
        "too) wherever it runs.",
        ge=1,
    )

    @field_validator("BACKEND_CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("BACKEND_CORS_ORIGINS")
    @classmethod
    def _explicit_origins(cls, origins: list[str]) -> list[str]:
        """CORS allows credentials (the browser sends its cookie session): every
        origin listed may read answers as the user, so each is named; `*` would
        make Starlette echo any origin back, credentials allowed."""
        return [origin(entry) for entry in origins]
