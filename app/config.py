"""The one place the app's configuration is read: arguments, the environment, then
`.env`; NAME_FILE reads any setting NAME from a file (app/settings/files.py).

The settings are declared by concern in app/settings/ (general, auth and tokens,
mail, database; the stack's own in edge); the app reads its four groups as one
`Settings`, from one `.env`, as `settings.NAME`.
"""

import logging
from email.utils import formataddr
from functools import lru_cache
from typing import Self
from urllib.parse import urlsplit

from pydantic import model_validator

from app.settings.auth import EXAMPLE_SECRET_KEY, AuthSettings
from app.settings.base import SettingsGroup
from app.settings.database import DatabaseSettings
from app.settings.edge import EdgeSettings
from app.settings.files import SettingFileError
from app.settings.general import EXAMPLE_SUPERUSER_PASSWORD, GeneralSettings
from app.settings.mail import MailSettings
from app.settings.observability import ObservabilitySettings
from app.settings.types import split_host_port

__all__ = [
    "EXAMPLE_SECRET_KEY",
    "GROUPS",
    "SettingFileError",
    "Settings",
    "get_settings",
    "split_host_port",
]

logger = logging.getLogger(__name__)


class Settings(
    GeneralSettings, AuthSettings, MailSettings, DatabaseSettings, ObservabilitySettings
):
    """Every setting the app reads."""

    @property
    def emails_from(self) -> str:
        return self.EMAILS_FROM or formataddr((self.PROJECT_NAME, f"noreply@{self.DOMAIN}"))

    @property
    def log_format(self) -> str:
        return self.log_format_for(self.ENVIRONMENT)

    @property
    def allows_plain_http_providers(self) -> bool:
        """An OpenID provider over http (a local or test one) is accepted only here."""
        return self.ENVIRONMENT in ("local", "test")

    @property
    def webauthn_rp_id(self) -> str:
        """The relying party id passkeys are bound to: WEBAUTHN_RP_ID, else DOMAIN."""
        return (self.WEBAUTHN_RP_ID or self.DOMAIN).lower()

    @property
    def webauthn_rp_name(self) -> str:
        return self.WEBAUTHN_RP_NAME or self.PROJECT_NAME

    @property
    def webauthn_origins(self) -> list[str]:
        """The pages allowed to register and use passkeys: WEBAUTHN_ORIGINS, else
        https://DOMAIN (and `make dev`'s http://DOMAIN:8000 when local)."""
        if self.WEBAUTHN_ORIGINS:
            return list(self.WEBAUTHN_ORIGINS)
        origins = [f"https://{self.DOMAIN}"]
        if self.ENVIRONMENT == "local":
            origins.append(f"http://{self.DOMAIN}:8000")
        return origins

    @model_validator(mode="after")
    def _check_webauthn(self) -> Self:
        """A browser refuses a relying party id its page's host is not under: say so
        at start-up rather than at every passkey ceremony."""
        rp_id = self.webauthn_rp_id
        if not rp_id or any(char in rp_id for char in ":/@ ") or rp_id.startswith("."):
            raise ValueError(
                f"WEBAUTHN_RP_ID: {rp_id!r} is not a domain (give a host name, no scheme or port)"
            )
        for entry in self.webauthn_origins:  # each an origin (app/settings/auth.py)
            host = (urlsplit(entry).hostname or "").lower()
            if host != rp_id and not host.endswith(f".{rp_id}"):
                raise ValueError(
                    f"WEBAUTHN_ORIGINS: {entry!r} is not on WEBAUTHN_RP_ID {rp_id!r} "
                    "(its host must be that domain or under it)"
                )
        return self

    @model_validator(mode="after")
    def _refuse_plain_http_providers(self) -> Self:
        if self.allows_plain_http_providers:
            return self
        for provider in self.oidc_providers.values():
            if not provider.issuer.startswith("https://"):
                raise ValueError(
                    f"OIDC_PROVIDERS: the issuer of {provider.name!r} must be https "
                    f"(ENVIRONMENT={self.ENVIRONMENT})"
                )
        return self

    @model_validator(mode="after")
    def _refuse_unverified_database_in_production(self) -> Self:
        """A managed database is reached across networks the stack does not own:
        only verify-full stops a machine in between from posing as it."""
        problem = self.database_tls_problem()
        if problem is None:
            return self
        if self.ENVIRONMENT == "production":
            raise ValueError(f"refusing to start in production: {problem}")
        logger.warning("%s (tolerated because ENVIRONMENT=%s)", problem, self.ENVIRONMENT)
        return self

    @model_validator(mode="after")
    def _refuse_example_secrets_in_production(self) -> Self:
        # Even with EdDSA: switching back to HS256 must never sign with the example.
        problems = self.weak_secret_keys()
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


# Every group, in the order of `.env.example`: the app's, then the stack's.
GROUPS: tuple[type[SettingsGroup], ...] = (
    GeneralSettings,
    AuthSettings,
    MailSettings,
    DatabaseSettings,
    ObservabilitySettings,
    EdgeSettings,
)


@lru_cache
def get_settings() -> Settings:
    return Settings()
