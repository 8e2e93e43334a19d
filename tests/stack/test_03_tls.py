"""What a client sees at the edge: certificate, redirect, headers."""

import socket
import ssl
from typing import Any

import httpx
import pytest

from tests.stack.conftest import DOMAIN, Stack


def test_certificate_is_issued_by_the_acme_ca_for_the_domain(stack: Stack) -> None:
    # The context trusts pebble's root of this run only, so a successful
    # handshake means the chain was issued through ACME for this name.
    with (
        socket.create_connection((DOMAIN, 443), timeout=10) as raw,
        stack.ssl_context().wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        cert: Any = tls.getpeercert()
    assert ("DNS", DOMAIN) in cert["subjectAltName"]
    issuer = {key: value for ((key, value),) in cert["issuer"]}
    assert "Pebble" in issuer.get("commonName", ""), issuer


def test_certificate_is_not_trusted_without_the_acme_root(stack: Stack) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(stack.url("/api/health"), verify=ssl.create_default_context(), timeout=10)


def test_http_redirects_to_https(stack: Stack) -> None:
    response = httpx.get(f"http://{DOMAIN}/docs?x=1", timeout=10)
    assert response.status_code in (301, 308)
    assert response.headers["location"] == f"https://{DOMAIN}/docs?x=1"


def test_security_headers_are_set(stack: Stack) -> None:
    with stack.client() as client:
        headers = client.get("/api/health").headers
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "server" not in headers


def test_dashboard_is_not_exposed(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get("/dashboard/").status_code == 404
        assert client.get("/dashboard/", headers={"Host": f"traefik.{DOMAIN}"}).status_code == 404
        assert client.get("/api/rawdata").status_code == 404
