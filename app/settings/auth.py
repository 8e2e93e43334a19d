"""Passwords, tokens and sessions: the keys that sign, the lifetimes, the throttles."""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Self

from cryptography.fernet import MultiFernet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode

from app.encryption_keys import EXAMPLE_ENCRYPTION_KEY, build_cipher
from app.settings.base import SettingsGroup
from app.settings.declaration import setting
from app.settings.general import split_commas
from app.settings.types import Duration, PositiveDuration, origin
from app.signing_keys import (
    Algorithm,
    KeyRing,
    UnusableKey,
    build_keyring,
    load_private_key,
    load_public_keys,
)

# A provider's name: in its routes (/api/auth/oidc/<name>/…) and the audit trail.
OIDC_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class OidcProviderSetting(BaseModel):
    """One OpenID provider of OIDC_PROVIDERS (its secret is in OIDC_CLIENT_SECRETS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str
    client_id: str
    scopes: str = "openid email profile"
    # What the sign-in button says ("Sign in with Google"); public.
    display_name: str | None = Field(default=None, min_length=1, max_length=64)


@dataclass(frozen=True, slots=True)
class OidcProviderConfig:
    """A configured provider, its secret joined to it."""

    name: str
    issuer: str
    client_id: str
    client_secret: SecretStr
    scopes: str
    display_name: str


# The value shipped in .env.example: fine on a laptop, refused in production.
EXAMPLE_SECRET_KEY = "changethis-example-secret-key-do-not-use-in-production"
MIN_SECRET_KEY_LENGTH = 32


class AuthSettings(SettingsGroup):
    """Lifetimes are seconds (900) or an ISO-8601 duration (PT15M, P14D)."""

    TITLE: ClassVar[str] = "Auth and tokens"

    SECRET_KEY: SecretStr = setting(
        SecretStr(EXAMPLE_SECRET_KEY),
        "Signs the JWTs (HS256). At least 32 random characters; `make up` generates "
        "one. Production refuses the example even with EdDSA (a switch back must not "
        "use it).",
        example=EXAMPLE_SECRET_KEY,
        required_in_production=True,
    )
    SECRET_KEY_PREVIOUS: Annotated[list[SecretStr], NoDecode] = setting(
        [],
        "Previous secrets, comma-separated: they sign nothing but still verify the "
        "tokens they signed. Rotating (docs/operations.md, 'Rotating secrets'): move "
        "SECRET_KEY here, set a new one, deploy; remove it after REFRESH_TOKEN_TTL. Same "
        "rules as SECRET_KEY.",
    )
    JWT_ALGORITHM: Algorithm = setting(
        "HS256",
        "HS256 (the secret above) or EdDSA (Ed25519: other services can verify tokens "
        "with the public keys published at https://<DOMAIN>/.well-known/jwks.json).",
    )
    JWT_PRIVATE_KEY: SecretStr | None = setting(
        None,
        "EdDSA's private key, PEM (`openssl genpkey -algorithm ed25519`): inline (keep "
        "the single quotes, on several lines or one with \\n), or its file's path in "
        "JWT_PRIVATE_KEY_FILE. Read and checked at start-up.",
    )
    JWT_PUBLIC_KEYS_PREVIOUS: str = setting(
        "",
        "Public keys (PEM blocks, one after the other) of retired Ed25519 keys whose "
        "tokens must keep working (still published): inline, or a file of them "
        "(JWT_PUBLIC_KEYS_PREVIOUS_FILE).",
    )
    JWT_REQUIRE_KID: bool = setting(
        True,
        "Every token names its key (kid). 'false' only while tokens issued before key "
        "ids existed must keep working: a token without a kid is then checked with "
        "the HMAC secrets (HS256). Set it back to 'true' after REFRESH_TOKEN_TTL.",
    )
    ACCESS_TOKEN_TTL: PositiveDuration = setting(
        timedelta(minutes=15), "Lifetime of an access token."
    )
    REFRESH_TOKEN_TTL: PositiveDuration = setting(
        timedelta(days=14), "Lifetime of a refresh token (a session without use)."
    )
    JWT_ISSUER: str = setting("fastapi-stack", "`iss`, written into every token and checked.")
    JWT_AUDIENCE: str = setting("fastapi-stack-api", "`aud`, written into every token and checked.")
    BCRYPT_ROUNDS: int = setting(
        12, "bcrypt cost factor (4-31). 12 costs about 0.25 s a hash on one core.", ge=4, le=31
    )
    PASSWORD_HASH_THREADS: int = setting(
        1,
        "Per worker process: bcrypt checks running at once (app/auth/passwords.py).",
        ge=1,
    )
    PASSWORD_HASH_QUEUE: int = setting(
        16,
        "Per worker process: bcrypt checks that may wait; beyond that a login answers "
        "503 with Retry-After instead of queueing forever.",
        ge=0,
    )
    LOGIN_MAX_FAILURES: int = setting(
        5,
        "Failed logins allowed per email and client address (or per known device) "
        "within LOGIN_FAILURE_WINDOW before /api/token/ answers 429.",
        ge=1,
    )
    LOGIN_FAILURE_WINDOW: PositiveDuration = setting(
        timedelta(minutes=15), "The window of LOGIN_MAX_FAILURES."
    )
    LOGIN_ACCOUNT_MAX_FAILURES: int = setting(
        100,
        "Failed logins allowed per account from all addresses together (ASVS: <= 100 an hour).",
        ge=1,
    )
    LOGIN_ACCOUNT_FAILURE_WINDOW: PositiveDuration = setting(
        timedelta(hours=1), "The window of LOGIN_ACCOUNT_MAX_FAILURES."
    )
    LOGIN_DEVICE_ACCOUNT_MAX_FAILURES: int = setting(
        20,
        "Failed logins from all of an account's known devices together, per "
        "LOGIN_ACCOUNT_FAILURE_WINDOW; past it, its known devices get 429 too (a pile "
        "of old device cookies is not a pile of fresh allowances).",
        ge=1,
    )
    DEVICE_TOKEN_TTL: PositiveDuration = setting(
        timedelta(days=365),
        "Lifetime of the device cookie a successful login sets: that client's failures "
        "count against it alone, so nobody else's failures can lock it out. Whatever "
        "ends every session of the account voids it sooner.",
    )
    REFRESH_REUSE_GRACE: Duration = setting(
        timedelta(seconds=2),
        "A spent refresh token presented again from the same address within this "
        "grace is refused without revoking its session (a double submit, not a "
        "theft); 0 turns it off.",
    )
    SWEEP_INTERVAL: Duration = setting(
        timedelta(hours=1),
        "How often the cleanup sweep runs inside the app, one worker at a time (a "
        "Postgres advisory lock); 0 turns it off.",
    )
    SESSION_RETENTION: Duration = setting(
        timedelta(days=7),
        "How long ended sessions, expired refresh tokens, mails sent or given up and "
        "expired mailed tokens are kept before the sweep deletes them (a record of "
        "which clients used an account, and when). Login failures go once past their "
        "window.",
    )
    AUDIT_RETENTION: PositiveDuration = setting(
        timedelta(days=365),
        "How long the audit trail keeps an event (sign-ins, password and email changes, "
        "roles, API keys) before the sweep deletes it. It also bounds what counts as a "
        "device the account used before (no new-sign-in notice).",
    )
    TOTP_ENCRYPTION_KEYS: Annotated[list[SecretStr], NoDecode] = setting(
        [SecretStr(EXAMPLE_ENCRYPTION_KEY)],
        "Encrypt the TOTP secrets (second factor) in the database: Fernet keys, "
        "comma-separated, apart from SECRET_KEY. The first encrypts, every one decrypts. "
        "Make one: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'; `make up` generates one. Rotating "
        "(docs/operations.md, 'Rotating secrets'): put a new key first, deploy, run "
        "`python -m app.auth.totp_rotate`, then drop the old one. Production refuses the "
        "example.",
        example=EXAMPLE_ENCRYPTION_KEY,
        required_in_production=True,
    )
    TOTP_CHALLENGE_TTL: PositiveDuration = setting(
        timedelta(minutes=5),
        "How long the challenge a password login answers for an account with a second "
        "factor stays valid: the second step must come within it.",
    )
    TOTP_ISSUER: str | None = setting(
        None,
        "The issuer an authenticator app shows beside the account (the otpauth URI's "
        "`issuer`); empty: PROJECT_NAME.",
    )

    OIDC_PROVIDERS: dict[str, OidcProviderSetting] = setting(
        {},
        "OpenID Connect providers users may sign in with, as JSON: "
        '{"<name>": {"issuer": "https://accounts.google.com", "client_id": "…"}}, '
        'optionally with "scopes" (default "openid email profile") and "display_name" '
        "(what the sign-in button says; default: the name). The name (a-z, 0-9, "
        "-) is in the routes: register https://<DOMAIN>/api/auth/oidc/<name>/callback "
        "as the redirect URI. The issuer must be https (outside local and test) and equal "
        "the one its discovery document names. docs/auth.md, 'Sign in with OpenID Connect'.",
    )
    OIDC_CLIENT_SECRETS: SecretStr = setting(
        SecretStr(""),
        'The client secret of each OIDC_PROVIDERS entry, as JSON: {"<name>": "<secret>"}.',
    )
    OIDC_CA_FILE: str = setting(
        "",
        "PEM file of CA certificates the app trusts for its OpenID providers (discovery, "
        "token endpoint, JWKS) besides the public CAs: for an issuer whose certificate "
        "a private CA signs (a company's). Read when the app starts; empty: the public "
        "CAs only (certifi's, as httpx uses).",
    )
    OIDC_FLOW_TTL: PositiveDuration = setting(
        timedelta(minutes=10),
        "How long a sign-in with an OpenID provider may take, from leaving for the "
        "provider to coming back: the life of the cookie that binds the flow's state, "
        "nonce and PKCE verifier to the browser.",
    )

    WEBAUTHN_RP_ID: str | None = setting(
        None,
        "Passkeys' relying party id: the domain passkeys are bound to, DOMAIN or a "
        "registrable domain it is under (example.com for api.example.com: then passkeys "
        "work on every host of example.com). Empty: DOMAIN. Changing it later orphans "
        "every passkey registered under the old one. docs/auth.md, 'Passkeys'.",
    )
    WEBAUTHN_RP_NAME: str | None = setting(
        None, "The name a browser shows when it creates a passkey; empty: PROJECT_NAME."
    )
    WEBAUTHN_ORIGINS: Annotated[list[str], NoDecode] = setting(
        [],
        "The pages (origins, scheme://host[:port], comma-separated) allowed to register "
        "and use passkeys; each host must be WEBAUTHN_RP_ID or under it. Empty: "
        "https://<DOMAIN>, and with ENVIRONMENT=local also http://<DOMAIN>:8000 (`make dev`).",
    )
    PASSKEY_CEREMONY_TTL: PositiveDuration = setting(
        timedelta(minutes=5),
        "How long the options of a passkey registration or sign-in stay valid: the "
        "browser's answer must come within it, once.",
    )

    # Built from the key settings when they load (see _load_keys).
    _keyring: KeyRing = PrivateAttr()
    _totp_cipher: MultiFernet = PrivateAttr()

    @field_validator(
        "SECRET_KEY_PREVIOUS", "TOTP_ENCRYPTION_KEYS", "WEBAUTHN_ORIGINS", mode="before"
    )
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("WEBAUTHN_ORIGINS")
    @classmethod
    def _webauthn_origins(cls, origins: list[str]) -> list[str]:
        """As browsers write them in clientDataJSON (no trailing slash), or refused."""
        checked = []
        for entry in origins:
            try:
                checked.append(origin(entry))
            except ValueError:
                raise ValueError(
                    f"WEBAUTHN_ORIGINS: {entry!r} is not an origin: give scheme://host[:port]"
                ) from None
        return checked

    @model_validator(mode="after")
    def _load_keys(self) -> Self:
        """Once, at load: a key that cannot be read stops start-up, naming the setting."""
        self._read_keys()
        self.oidc_providers  # noqa: B018 (raises ValueError on a provider it cannot use)
        return self

    @property
    def oidc_providers(self) -> dict[str, OidcProviderConfig]:
        """OIDC_PROVIDERS with their secrets; ValueError names what is wrong."""
        raw = self.OIDC_CLIENT_SECRETS.get_secret_value().strip()
        try:
            secrets = json.loads(raw) if raw else {}
        except ValueError:
            raise ValueError("OIDC_CLIENT_SECRETS must be a JSON object") from None
        if not isinstance(secrets, dict):
            raise ValueError("OIDC_CLIENT_SECRETS must be a JSON object")
        providers: dict[str, OidcProviderConfig] = {}
        for name, provider in self.OIDC_PROVIDERS.items():
            if not OIDC_PROVIDER_NAME.fullmatch(name):
                raise ValueError(f"OIDC_PROVIDERS: {name!r} is not a name (a-z, 0-9, -)")
            secret = secrets.get(name)
            if not isinstance(secret, str) or not secret:
                raise ValueError(f"OIDC_CLIENT_SECRETS has no secret for provider {name!r}")
            providers[name] = OidcProviderConfig(
                name=name,
                issuer=provider.issuer,
                client_id=provider.client_id,
                client_secret=SecretStr(secret),
                scopes=provider.scopes,
                display_name=provider.display_name or name,
            )
        return providers

    def _read_keys(self) -> None:
        self._keyring = self._read_keyring()
        self._totp_cipher = build_cipher(
            [key.get_secret_value() for key in self.TOTP_ENCRYPTION_KEYS], "TOTP_ENCRYPTION_KEYS"
        )

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

    @property
    def totp_cipher(self) -> MultiFernet:
        """Encrypts with the first TOTP_ENCRYPTION_KEYS key, decrypts with any."""
        return self._totp_cipher

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """model_copy runs no validator: the copy reads its own keys, so a copy with
        other key settings never signs or verifies with the original's. It reads no
        NAME_FILE either (that is loading): settings only, or it would be a no-op."""
        unknown = sorted(set(update or {}) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"model_copy updates settings only, not {unknown}")
        copy = super().model_copy(update=update, deep=deep)
        copy._read_keys()
        return copy

    def weak_secret_keys(self) -> list[str]:
        """Why the signing and encryption keys are unfit for production, one line per
        setting."""
        problems: list[str] = []
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
        encryption_keys = [key.get_secret_value() for key in self.TOTP_ENCRYPTION_KEYS]
        if EXAMPLE_ENCRYPTION_KEY in encryption_keys:
            problems.append("TOTP_ENCRYPTION_KEYS must hold keys of its own, not the example")
        return problems
