"""OIDC_PROVIDERS and OIDC_CLIENT_SECRETS, checked when the settings load: each
provider has a name fit for its routes and a secret, and an issuer over https
outside local and test. The JSON arrives from the environment, as in `.env`."""

import json

import pytest
from pydantic import ValidationError

from app.settings.auth import OidcProviderConfig
from tests.config import settings

GOOGLE = {"google": {"issuer": "https://accounts.google.com", "client_id": "id"}}
SECRETS = json.dumps({"google": "s3cr3t-value"})


def from_env(
    monkeypatch: pytest.MonkeyPatch, providers: object, secrets: str = SECRETS, **values: object
) -> dict[str, OidcProviderConfig]:
    monkeypatch.setenv("OIDC_PROVIDERS", json.dumps(providers))
    monkeypatch.setenv("OIDC_CLIENT_SECRETS", secrets)
    return settings(**values).oidc_providers


def test_a_provider_is_read_with_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    google = from_env(monkeypatch, GOOGLE)["google"]
    assert (google.issuer, google.client_id, google.scopes) == (
        "https://accounts.google.com",
        "id",
        "openid email profile",
    )
    assert google.client_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(google)


def test_none_is_configured_by_default() -> None:
    assert settings().oidc_providers == {}


@pytest.mark.parametrize(
    ("providers", "secrets", "named"),
    [
        (GOOGLE, "{}", "OIDC_CLIENT_SECRETS has no secret for provider 'google'"),
        (GOOGLE, "not json", "OIDC_CLIENT_SECRETS must be a JSON object"),
        ({"Google!": GOOGLE["google"]}, SECRETS, "is not a name"),
    ],
)
def test_a_provider_it_cannot_use_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, providers: object, secrets: str, named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        from_env(monkeypatch, providers, secrets)


def test_an_http_issuer_is_refused_outside_local_and_test(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = {"google": {"issuer": "http://accounts.example", "client_id": "id"}}
    assert from_env(monkeypatch, plain, ENVIRONMENT="test")
    with pytest.raises(ValidationError, match="must be https"):
        from_env(monkeypatch, plain, ENVIRONMENT="staging")


def test_a_display_name_is_optional_and_defaults_to_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    named = {"google": {**GOOGLE["google"], "display_name": "Google"}}
    assert from_env(monkeypatch, named)["google"].display_name == "Google"
    assert from_env(monkeypatch, GOOGLE)["google"].display_name == "google"
    with pytest.raises(ValidationError, match="display_name"):
        from_env(monkeypatch, {"google": {**GOOGLE["google"], "display_name": ""}})


def test_the_ca_file_is_a_path_the_app_reads_when_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OIDC_CA_FILE is read from the environment like the rest, but not opened
    when the settings load: `app.prestart` (the migration) and the scripts never
    need the file; the app does, at start (tests/auth/test_oidc_tls.py)."""
    assert settings().OIDC_CA_FILE == ""
    monkeypatch.setenv("OIDC_CA_FILE", "/etc/ssl/company/ca.pem")
    assert settings().OIDC_CA_FILE == "/etc/ssl/company/ca.pem"
