"""WEBAUTHN_RP_ID, WEBAUTHN_RP_NAME and WEBAUTHN_ORIGINS: their defaults come
from DOMAIN and PROJECT_NAME, and an origin a browser would refuse for the
relying party id stops start-up, naming the setting. Values arrive from the
environment, as in `.env`."""

import pytest
from pydantic import ValidationError

from tests.config import settings


def test_the_defaults_follow_the_domain_and_the_project_name() -> None:
    loaded = settings(ENVIRONMENT="staging", DOMAIN="api.example.com", PROJECT_NAME="Shop")
    assert loaded.webauthn_rp_id == "api.example.com"
    assert loaded.webauthn_rp_name == "Shop"
    assert loaded.webauthn_origins == ["https://api.example.com"]


def test_locally_make_devs_origin_is_allowed_too() -> None:
    loaded = settings(ENVIRONMENT="local", DOMAIN="stack.localhost")
    assert loaded.webauthn_origins == ["https://stack.localhost", "http://stack.localhost:8000"]


def test_a_registrable_domain_above_the_api_serves_its_other_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBAUTHN_RP_ID", "Example.com")
    monkeypatch.setenv("WEBAUTHN_ORIGINS", "https://app.example.com, https://example.com/")
    loaded = settings(DOMAIN="api.example.com", WEBAUTHN_RP_NAME="Example")
    assert loaded.webauthn_rp_id == "example.com"
    assert loaded.webauthn_rp_name == "Example"
    assert loaded.webauthn_origins == ["https://app.example.com", "https://example.com"]


@pytest.mark.parametrize(
    ("rp_id", "origins", "named"),
    [
        (None, "https://evil.example", "WEBAUTHN_ORIGINS"),
        (None, "https://stack.localhost.evil.example", "WEBAUTHN_ORIGINS"),
        ("example.com", "https://notexample.com", "WEBAUTHN_ORIGINS"),
        (None, "stack.localhost", "WEBAUTHN_ORIGINS"),
        (None, "https://*.stack.localhost", "WEBAUTHN_ORIGINS"),
        ("https://example.com", None, "WEBAUTHN_RP_ID"),
        ("example.com:443", None, "WEBAUTHN_RP_ID"),
    ],
)
def test_an_origin_or_id_a_browser_would_refuse_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, rp_id: str | None, origins: str | None, named: str
) -> None:
    if rp_id is not None:
        monkeypatch.setenv("WEBAUTHN_RP_ID", rp_id)
    if origins is not None:
        monkeypatch.setenv("WEBAUTHN_ORIGINS", origins)
    with pytest.raises(ValidationError, match=named):
        settings(DOMAIN="stack.localhost")
