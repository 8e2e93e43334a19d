"""An OpenID provider behind TLS whose certificate a private CA signs (a
company's issuer): the app trusts it once OIDC_CA_FILE names that CA, and only
then. The real provider (tests/oidc/provider.py) serves HTTPS itself here, with
a certificate for 127.0.0.1 that is its own CA."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.auth import oidc
from app.config import Settings
from tests.conftest import CLIENT_ADDRESS, app_with, client_at
from tests.mail.smtp_server import self_signed_certificate
from tests.oidc.helpers import signed_in
from tests.oidc.provider import OpenIdProvider, account, running_provider, sign_in, start

EMAIL = "ada@example.com"


@pytest.fixture(scope="module")
def tls_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    certificate = self_signed_certificate(tmp_path_factory.mktemp("oidc-tls"))
    with running_provider(tls=certificate) as provider:
        yield provider


async def test_with_its_ca_in_oidc_ca_file_the_whole_dance_signs_in(
    app: FastAPI, tls_provider: OpenIdProvider
) -> None:
    """Discovery, the token endpoint and the JWKS all over HTTPS, through the one
    client OIDC_CA_FILE configures."""
    assert tls_provider.issuer.startswith("https://127.0.0.1:")
    async with (
        app_with(app.state.settings, **tls_provider.settings()) as application,
        client_at(application, CLIENT_ADDRESS) as browser,
    ):
        response = await sign_in(browser, account(EMAIL), ca_file=tls_provider.ca_file)
        signed_in(response)
        me = await browser.get("/api/users/me")
        assert me.status_code == 200, me.text
        assert me.json()["email"] == EMAIL


async def test_without_its_ca_the_provider_is_not_trusted(
    app: FastAPI, tls_provider: OpenIdProvider, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {**tls_provider.settings(), "OIDC_CA_FILE": ""}
    async with (
        app_with(app.state.settings, **settings) as application,
        client_at(application, CLIENT_ADDRESS) as browser,
    ):
        with caplog.at_level(logging.WARNING, logger="app.auth.oidc"):
            response = await start(browser)
    assert response.status_code == 502, response.text
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


async def test_another_ca_is_not_trusted_either(
    app: FastAPI, tls_provider: OpenIdProvider, tmp_path: Path
) -> None:
    other_ca, _ = self_signed_certificate(tmp_path)
    settings = {**tls_provider.settings(), "OIDC_CA_FILE": str(other_ca)}
    async with (
        app_with(app.state.settings, **settings) as application,
        client_at(application, CLIENT_ADDRESS) as browser,
    ):
        assert (await start(browser)).status_code == 502


def test_the_ca_file_is_trusted_besides_the_public_cas(tmp_path: Path) -> None:
    """Added to httpx's default (certifi's bundle), not instead of it: Google
    and the company's issuer side by side."""
    ca_file, _ = self_signed_certificate(tmp_path)
    public = oidc.tls_context("").get_ca_certs()
    both = oidc.tls_context(str(ca_file)).get_ca_certs()
    assert len(public) > 100
    assert len(both) == len(public) + 1
    [added] = [cert for cert in both if cert not in public]
    assert added["subject"] == ((("commonName", "test smtp"),),)


@pytest.mark.parametrize("content", [None, b"", b"not a certificate\n"])
async def test_an_unusable_ca_file_stops_start_up_naming_the_setting(
    settings: Settings, tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(oidc.UnusableCaFile, match=f"OIDC_CA_FILE: cannot load {path}"):
        async with app_with(settings, OIDC_CA_FILE=str(path)):
            pass
