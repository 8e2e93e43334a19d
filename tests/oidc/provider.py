"""A real OpenID provider for the tests: panva's oidc-provider (tests/oidc/
provider.mjs, on node, installed by `make install`), on a loopback port (plain
HTTP, or HTTPS with a certificate of the test's own CA), with signing keys the
tests hold too (to forge what only the provider could sign);
the browser's side of the authorization-code dance, driven with httpx through
the provider's own login and consent pages; and a transport that lets a test
stand between the app and the provider's token endpoint."""

import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr

from app.settings.auth import OidcProviderSetting
from devtools.embedded_postgres import free_port

HERE = Path(__file__).resolve().parent
PROVIDER = "test"
CLIENT_ID = "fastapi-stack-tests"
CLIENT_SECRET = "the-test-client-secret"
DOMAIN = "testserver"
REDIRECT_URI = f"https://{DOMAIN}/api/auth/oidc/{PROVIDER}/callback"
START_PATH = f"/api/auth/oidc/{PROVIDER}/start"
KID = "test-provider-key"
STARTUP_SECONDS = 30


def account(email: str, *, verified: bool = True, subject: str | None = None) -> str:
    """The login to type at the provider for an account with this address (its
    `sub` is the login: the same login is the same account)."""
    return f"{subject or 'sub-' + email}|{email}|{'true' if verified else 'false'}"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class OpenIdProvider:
    issuer: str
    key: rsa.RSAPrivateKey
    # Behind TLS: the CA file that signs its certificate (OIDC_CA_FILE's value).
    ca_file: Path | None = None

    def sign(
        self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None, kid: str = KID
    ) -> str:
        """An ID token as this provider signs them (or with another key)."""
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid})

    def settings(self, issuer: str | None = None) -> dict[str, Any]:
        """The app's settings for this provider (under another issuer if given);
        behind TLS, its CA as OIDC_CA_FILE."""
        return {
            "DOMAIN": DOMAIN,
            "OIDC_PROVIDERS": {
                PROVIDER: OidcProviderSetting(issuer=issuer or self.issuer, client_id=CLIENT_ID)
            },
            "OIDC_CLIENT_SECRETS": SecretStr(json.dumps({PROVIDER: CLIENT_SECRET})),
            "OIDC_CA_FILE": str(self.ca_file or ""),
        }


def _private_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": KID, "alg": "RS256", "use": "sig"}


@contextmanager
def running_provider(tls: tuple[Path, Path] | None = None) -> Iterator[OpenIdProvider]:
    """The provider on a free loopback port; with `tls` (a certificate for
    127.0.0.1 that is its own CA, and its key) over HTTPS."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("the test OpenID provider needs node and `make install` (npm ci in tests/oidc)")
    key = new_key()
    port = free_port()
    issuer = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    ca_file = tls[0] if tls else None
    environment = {
        **os.environ,
        "PORT": str(port),
        "ISSUER": issuer,
        "JWKS": json.dumps({"keys": [_private_jwk(key)]}),
        "CLIENT": json.dumps(
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [REDIRECT_URI],
            }
        ),
        "NODE_ENV": "test",
    }
    if tls:
        environment |= {"TLS_CERT": str(tls[0]), "TLS_KEY": str(tls[1])}
    process = subprocess.Popen(
        [node, str(HERE / "provider.mjs")],
        cwd=HERE,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"the test OpenID provider exited: {output}")
            try:
                discovery = f"{issuer}/.well-known/openid-configuration"
                if httpx.get(discovery, verify=verifier(ca_file)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the test OpenID provider did not start")
            time.sleep(0.1)
        yield OpenIdProvider(issuer=issuer, key=key, ca_file=ca_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- The browser at the provider ---------------------------------------------------

_FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S)
_HIDDEN = re.compile(r"<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\"\s*/?>")


def verifier(ca_file: Path | None) -> ssl.SSLContext | bool:
    """httpx's `verify` for a provider: its CA if it has one (else plain HTTP)."""
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True


async def authorize(authorization_url: str, login: str, *, ca_file: Path | None = None) -> str:
    """Be the browser at the provider: follow its redirects, fill in its login
    form (`login`, any password) and confirm its consent form, until it sends the
    browser back to the app; the callback URL it sends it to. A provider behind
    TLS: the browser trusts `ca_file`."""
    url = authorization_url
    async with httpx.AsyncClient(verify=verifier(ca_file)) as browser:
        for _ in range(20):
            if url.startswith(REDIRECT_URI):
                return url
            response = await browser.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            assert response.status_code == 200, response.text
            forms = _FORM.findall(response.text)
            assert forms, response.text
            action, inner = forms[0]
            fields = {name: unescape(value) for name, value in _HIDDEN.findall(inner)}
            if fields.get("prompt") == "login":
                fields |= {"login": login, "password": "any"}
            posted = await browser.post(urljoin(url, unescape(action)), data=fields)
            assert posted.is_redirect, posted.text
            url = urljoin(url, posted.headers["location"])
    raise AssertionError("the provider never sent the browser back")


@dataclass(frozen=True)
class Flow:
    """A flow a browser of the app started: its flow cookie and the callback URL
    the provider sent it to (with the code and state)."""

    redirect: httpx.Response
    callback_url: str

    @property
    def query(self) -> dict[str, str]:
        return {
            name: values[0] for name, values in parse_qs(urlsplit(self.callback_url).query).items()
        }


async def start(app_client: httpx.AsyncClient, redirect_to: str | None = None) -> httpx.Response:
    params = {} if redirect_to is None else {"redirect_to": redirect_to}
    return await app_client.get(START_PATH, params=params)


async def go_to_provider(
    app_client: httpx.AsyncClient,
    login: str,
    *,
    redirect_to: str | None = None,
    ca_file: Path | None = None,
) -> Flow:
    """Start a flow in this browser and sign in at the provider: the app has not
    seen the callback yet."""
    started = await start(app_client, redirect_to)
    assert started.status_code == 302, started.text
    return Flow(started, await authorize(started.headers["location"], login, ca_file=ca_file))


async def sign_in(
    app_client: httpx.AsyncClient,
    login: str,
    *,
    redirect_to: str | None = None,
    ca_file: Path | None = None,
) -> httpx.Response:
    """The whole dance in one browser: the app's answer to the callback."""
    flow = await go_to_provider(app_client, login, redirect_to=redirect_to, ca_file=ca_file)
    return await app_client.get(flow.callback_url)


# --- Between the app and the provider -------------------------------------------------


@dataclass
class Interceptor(httpx.AsyncBaseTransport):
    """The app's outgoing transport, with a hand on the token endpoint: a test may
    rewrite the request's form (`request_form`) or the answer's ID token
    (`id_token`), and sees every ID token the provider issued (`issued`)."""

    request_form: Callable[[dict[str, str]], dict[str, str]] | None = None
    id_token: Callable[[str], str] | None = None
    issued: list[str] = field(default_factory=list)
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_token = request.url.path.endswith("/token")
        if is_token and self.request_form is not None:
            form = {
                name: values[0]
                for name, values in parse_qs((await request.aread()).decode()).items()
            }
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            request = httpx.Request(
                request.method, request.url, headers=headers, data=self.request_form(form)
            )
        response = await self.inner.handle_async_request(request)
        if not is_token:
            return response
        body = await response.aread()
        if response.status_code != 200:
            content_type = response.headers.get("content-type", "application/json")
            return httpx.Response(
                response.status_code, content=body, headers={"content-type": content_type}
            )
        answer = json.loads(body)
        self.issued.append(answer["id_token"])
        if self.id_token is not None:
            answer["id_token"] = self.id_token(answer["id_token"])
        return httpx.Response(200, json=answer)

    async def aclose(self) -> None:
        await self.inner.aclose()
