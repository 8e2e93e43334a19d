"""The OpenID Connect relying party: each configured provider's discovery
document and keys, the authorization request (PKCE S256, `state`, `nonce`), and
the code's redemption at the token endpoint with its ID token verified
(app/auth/tokens.py `verify_id_token`). Outgoing calls go through one
httpx.AsyncClient per worker (`Providers.http`), opened at the first call to a
provider and closed with the app's lifespan: a client holds an SSL context with
the whole CA bundle (~2 MB), which a worker that never signs anyone in through a
provider should not pay for (docs/performance.md, memory).

No database, no request, no cookie here: the flow's state travels in the
browser's flow cookie (tokens.OidcFlow, carried by app/auth/oidc_routes.py) and
the account is resolved by app/services/oidc_accounts.py.
"""

import asyncio
import base64
import hashlib
import logging
import secrets
import ssl
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode, urlsplit

from app.auth import tokens
from app.config import Settings
from app.exceptions import NotFound, OidcProviderFailed
from app.settings.auth import OidcProviderConfig

if TYPE_CHECKING:
    # Imported where a call is made, not here: httpx and its transport (~1.5 MB)
    # load only in a worker that signs someone in through a provider.
    import httpx

logger = logging.getLogger(__name__)

# How long a discovery document and a JWKS are trusted before they are read
# again (a JWKS is read again at once for a kid it does not hold: a key rotation).
METADATA_TTL_SECONDS = 3600
# The least time between two JWKS reads for an unknown kid (forged kids cost no flood).
JWKS_REFRESH_INTERVAL_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10.0
# OpenID Connect Core §2: `sub` is at most 255 ASCII characters (the column's size);
# an address longer than any valid one is no address.
MAX_SUBJECT_LENGTH = 255
MAX_EMAIL_LENGTH = 320


class OidcFailure(Exception):
    """A step of the flow failed; `reason` is what the audit trail records."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def new_secret() -> str:
    """A state, nonce or PKCE verifier: 256 random bits, url-safe (43 characters,
    within RFC 7636's 43-128 for the verifier)."""
    return secrets.token_urlsafe(32)


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Metadata:
    """What the app uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in: its verified ID token's claims."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool


@dataclass(slots=True)
class Provider:
    """One configured provider, its discovery document and keys cached."""

    config: OidcProviderConfig
    allow_http: bool
    _metadata: Metadata | None = None
    _metadata_read_at: float = 0.0
    _jwks: dict[str, Any] = field(default_factory=dict)
    _jwks_read_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    def _checked_url(self, url: object, what: str) -> str:
        if not isinstance(url, str) or not url:
            raise self._misconfigured(f"its discovery document has no {what}")
        scheme = urlsplit(url).scheme
        if scheme != "https" and not (self.allow_http and scheme == "http"):
            raise self._misconfigured(f"its {what} is not https: {url}")
        return url

    def _misconfigured(self, why: str) -> OidcProviderFailed:
        logger.error("OpenID provider %r refused: %s", self.name, why)
        return OidcProviderFailed(f"The OpenID provider {self.name!r} is misconfigured: {why}")

    async def _get_json(self, http: "httpx.AsyncClient", url: str, what: str) -> dict[str, Any]:
        import httpx

        try:
            response = await http.get(url, timeout=HTTP_TIMEOUT_SECONDS)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("OpenID provider %r: reading its %s failed: %s", self.name, what, exc)
            raise OidcProviderFailed(
                f"The OpenID provider {self.name!r} is unavailable: its {what} could not be read"
            ) from None
        if not isinstance(document, dict):
            raise self._misconfigured(f"its {what} is not a JSON object")
        return document

    async def metadata(self, http: "httpx.AsyncClient") -> Metadata:
        """The discovery document (OpenID Connect Discovery §4), read at first use
        and every METADATA_TTL_SECONDS. Its `issuer` must equal the configured
        one exactly (§4.3): else the provider is refused, with a clear error."""
        async with self._lock:
            fresh = time.monotonic() - self._metadata_read_at < METADATA_TTL_SECONDS
            if self._metadata is not None and fresh:
                return self._metadata
            issuer = self._checked_url(self.config.issuer, "issuer")
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(http, url, "discovery document")
            if document.get("issuer") != issuer:
                raise self._misconfigured(
                    f"its discovery document names the issuer {document.get('issuer')!r}, "
                    f"not the configured {issuer!r}"
                )
            self._metadata = Metadata(
                issuer=issuer,
                authorization_endpoint=self._checked_url(
                    document.get("authorization_endpoint"), "authorization_endpoint"
                ),
                token_endpoint=self._checked_url(document.get("token_endpoint"), "token_endpoint"),
                jwks_uri=self._checked_url(document.get("jwks_uri"), "jwks_uri"),
            )
            self._metadata_read_at = time.monotonic()
            return self._metadata

    async def _keys(
        self, http: "httpx.AsyncClient", metadata: Metadata, kid: object
    ) -> dict[str, Any]:
        """The JWKS, read again when stale or when it lacks the token's kid (a
        rotation), at most every JWKS_REFRESH_INTERVAL_SECONDS for the latter."""
        async with self._lock:
            age = time.monotonic() - self._jwks_read_at
            known = any(
                isinstance(key, dict) and (kid is None or key.get("kid") == kid)
                for key in self._jwks.get("keys", [])
            )
            if age >= METADATA_TTL_SECONDS or (not known and age >= JWKS_REFRESH_INTERVAL_SECONDS):
                self._jwks = await self._get_json(http, metadata.jwks_uri, "JWKS")
                self._jwks_read_at = time.monotonic()
            return self._jwks

    async def authorization_url(
        self, http: "httpx.AsyncClient", flow: tokens.OidcFlow, *, redirect_uri: str
    ) -> str:
        """Where to send the browser: the authorization code flow with PKCE S256."""
        metadata = await self.metadata(http)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.config.scopes,
                "state": flow.state,
                "nonce": flow.nonce,
                "code_challenge": pkce_challenge(flow.verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if urlsplit(metadata.authorization_endpoint).query else "?"
        return f"{metadata.authorization_endpoint}{separator}{query}"

    async def redeem(
        self, http: "httpx.AsyncClient", flow: tokens.OidcFlow, *, code: str, redirect_uri: str
    ) -> Identity:
        """Trade the code (with the flow's PKCE verifier) for tokens at the token
        endpoint, authenticated with the client secret (client_secret_basic), and
        verify the ID token it answers: who signed in."""
        import httpx

        metadata = await self.metadata(http)
        try:
            response = await http.post(
                metadata.token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": flow.verifier,
                },
                # RFC 6749 §2.3.1: each form-urlencoded before Basic encodes them.
                auth=(
                    quote_plus(self.config.client_id),
                    quote_plus(self.config.client_secret.get_secret_value()),
                ),
                headers={"Accept": "application/json"},
                timeout=HTTP_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            logger.warning("OpenID provider %r: token endpoint failed: %s", self.name, exc)
            raise OidcProviderFailed(
                f"The OpenID provider {self.name!r} is unavailable: its token endpoint failed"
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != HTTPStatus.OK or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else response.status_code
            raise OidcFailure("oidc_token_refused", f"the token endpoint refused the code: {error}")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise OidcFailure("oidc_id_token_invalid", "the token endpoint answered no ID token")
        return await self.verify(http, metadata, id_token, nonce=flow.nonce)

    async def verify(
        self, http: "httpx.AsyncClient", metadata: Metadata, id_token: str, *, nonce: str
    ) -> Identity:
        try:
            kid = tokens.id_token_kid(id_token)
            jwks = await self._keys(http, metadata, kid)
            claims = tokens.verify_id_token(
                id_token,
                jwks=jwks,
                issuer=metadata.issuer,
                client_id=self.config.client_id,
                nonce=nonce,
            )
        except tokens.InvalidToken as exc:
            raise OidcFailure("oidc_id_token_invalid", f"ID token refused: {exc}") from None
        if len(claims["sub"]) > MAX_SUBJECT_LENGTH:
            raise OidcFailure("oidc_id_token_invalid", "the ID token's subject is too long")
        email = claims.get("email")
        return Identity(
            provider=self.name,
            subject=claims["sub"],
            email=email if isinstance(email, str) and 0 < len(email) <= MAX_EMAIL_LENGTH else None,
            # Only a JSON true counts (never "true", 1, or an absent claim).
            email_verified=claims.get("email_verified") is True,
        )


@dataclass(slots=True)
class Providers:
    """The configured providers, and the HTTP client their calls share."""

    by_name: dict[str, Provider]
    # OIDC_CA_FILE's context, built at start so that a bad file stops the app
    # there; None: the public CAs alone, loaded with the client.
    trusted: ssl.SSLContext | None = None
    _http: "httpx.AsyncClient | None" = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Providers":
        allow_http = settings.allows_plain_http_providers
        return cls(
            by_name={
                name: Provider(config=config, allow_http=allow_http)
                for name, config in settings.oidc_providers.items()
            },
            trusted=tls_context(settings.OIDC_CA_FILE) if settings.OIDC_CA_FILE else None,
        )

    @property
    def http(self) -> "httpx.AsyncClient":
        if self._http is None:
            self._http = new_client(self.trusted)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def get(self, name: str) -> Provider:
        provider = self.by_name.get(name)
        if provider is None:
            raise NotFound("No such OpenID provider")
        return provider


def redirect_uri(settings: Settings, provider: str) -> str:
    """The callback to register at the provider: on DOMAIN, over https."""
    return f"https://{settings.DOMAIN}/api/auth/oidc/{provider}/callback"


class UnusableCaFile(ValueError):
    """OIDC_CA_FILE cannot be read as PEM certificates: the app does not start."""


def tls_context(ca_file: str) -> ssl.SSLContext:
    """What the client trusts: the public CAs, as httpx's own default (certifi's
    bundle), and OIDC_CA_FILE's certificates besides when set (a provider whose
    certificate a private CA signs). Only this client: SMTP and the rest keep theirs."""
    import httpx

    context = httpx.create_ssl_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except OSError as exc:  # ssl.SSLError too: no PEM certificate in it
            reason = exc.strerror or exc
            raise UnusableCaFile(f"OIDC_CA_FILE: cannot load {ca_file}: {reason}") from None
    return context


def new_client(trusted: ssl.SSLContext | None) -> "httpx.AsyncClient":
    """The app's client for outgoing calls to providers: no redirects followed
    (a discovery document or a token answer comes from where it was asked)."""
    import httpx

    return httpx.AsyncClient(
        follow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
        verify=True if trusted is None else trusted,  # True: httpx's own, the public CAs
    )
