"""POSTGRES_SSLMODE and POSTGRES_SSLROOTCERT: in every connection's URL, checked at
start-up, and production's refusal of an unverified database outside the stack."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.config import settings
from tests.conftest import TEST_TOTP_KEY

PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "k" * 48,
    "TOTP_ENCRYPTION_KEYS": TEST_TOTP_KEY,
}


def test_the_tls_settings_travel_in_the_database_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("PEM")
    url = settings(POSTGRES_SSLMODE="verify-full", POSTGRES_SSLROOTCERT=str(ca)).database_url()
    assert url.query == {"sslmode": "verify-full", "sslrootcert": str(ca)}


def test_the_default_is_libpqs_prefer_for_the_stacks_own_database() -> None:
    assert settings().database_url().query == {"sslmode": "prefer"}


def test_a_verifying_mode_without_a_ca_is_refused() -> None:
    with pytest.raises(ValidationError, match="verify-full needs POSTGRES_SSLROOTCERT"):
        settings(POSTGRES_SSLMODE="verify-full")


def test_a_ca_file_that_is_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is not a readable file"):
        settings(POSTGRES_SSLMODE="verify-ca", POSTGRES_SSLROOTCERT=str(tmp_path / "none.pem"))


def test_system_cas_need_no_file() -> None:
    loaded = settings(POSTGRES_SSLMODE="verify-full", POSTGRES_SSLROOTCERT="system")
    assert loaded.database_url().query["sslrootcert"] == "system"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValidationError, match="POSTGRES_SSLMODE"):
        settings(POSTGRES_SSLMODE="on")


@pytest.mark.parametrize("mode", ["disable", "prefer", "require", "verify-ca"])
def test_production_refuses_an_unverified_database_outside_the_stack(mode: str) -> None:
    extra = {"POSTGRES_SSLROOTCERT": "system"} if mode == "verify-ca" else {}
    with pytest.raises(ValidationError, match=f"POSTGRES_SSLMODE={mode} does not verify"):
        settings(**PRODUCTION, POSTGRES_URL="mydb.example.com", POSTGRES_SSLMODE=mode, **extra)


def test_production_accepts_an_unverified_database_when_told_to() -> None:
    loaded = settings(
        **PRODUCTION,
        POSTGRES_URL="10.1.2.3:5432",
        POSTGRES_SSLMODE="require",
        POSTGRES_ALLOW_UNVERIFIED_TLS=True,
    )
    assert loaded.POSTGRES_SSLMODE == "require"


@pytest.mark.parametrize("address", ["db:5432", "localhost", "127.0.0.1:5433", "[::1]:5432"])
def test_production_keeps_prefer_for_the_stacks_own_database(address: str) -> None:
    assert settings(**PRODUCTION, POSTGRES_URL=address).POSTGRES_SSLMODE == "prefer"


def test_production_accepts_verify_full_outside_the_stack() -> None:
    loaded = settings(
        **PRODUCTION,
        POSTGRES_URL="mydb.example.com",
        POSTGRES_SSLMODE="verify-full",
        POSTGRES_SSLROOTCERT="system",
    )
    assert loaded.database_is_local is False
