from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import EXAMPLE_SECRET_KEY, Settings, split_host_port
from tests.config import settings
from tests.conftest import TEST_TOTP_KEY

GOOD_KEY = "k" * 48
# What production needs besides a good SECRET_KEY: TOTP encryption keys of its own.
PRODUCTION = {"ENVIRONMENT": "production", "TOTP_ENCRYPTION_KEYS": TEST_TOTP_KEY}


def test_defaults_match_the_documented_ones() -> None:
    defaults = settings()
    assert defaults.ACCESS_TOKEN_TTL == timedelta(minutes=15)
    assert defaults.REFRESH_TOKEN_TTL == timedelta(days=14)
    assert defaults.BCRYPT_ROUNDS == 12
    assert defaults.ENVIRONMENT == "local"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("900", timedelta(seconds=900)),
        ("PT15M", timedelta(minutes=15)),
        ("P14D", timedelta(days=14)),
        ("PT1H30M", timedelta(minutes=90)),
    ],
)
def test_token_lifetimes_accept_seconds_or_iso_8601(
    raw: str, expected: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_TTL", raw)
    monkeypatch.setenv("REFRESH_TOKEN_TTL", raw)
    loaded = settings()
    assert loaded.ACCESS_TOKEN_TTL == expected
    assert loaded.REFRESH_TOKEN_TTL == expected


@pytest.mark.parametrize("raw", ["0", "-5", "PT0S", "fifteen minutes"])
def test_a_zero_negative_or_unreadable_lifetime_is_refused(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_TTL", raw)
    with pytest.raises(ValidationError, match="ACCESS_TOKEN_TTL"):
        settings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost:5432", ("localhost", 5432)),
        ("db", ("db", 5432)),
        ("10.0.0.5:6543", ("10.0.0.5", 6543)),
        ("[::1]:5433", ("::1", 5433)),
    ],
)
def test_postgres_url_is_host_and_port(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value) == expected


@pytest.mark.parametrize(
    "value", ["postgresql://u:p@h/db", "localhost:notaport", "localhost:70000", ":5432"]
)
def test_a_postgres_url_that_is_not_host_port_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="POSTGRES_URL"):
        settings(POSTGRES_URL=value)


def test_the_database_url_keeps_every_password_character() -> None:
    password = "`b{5:P3kUv5LdJF.@/?#%'\" "
    url = settings(POSTGRES_PW=password, POSTGRES_URL="db:5433").database_url()
    assert url.password == password
    assert url.host == "db"
    assert url.port == 5433
    assert url.drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    "secret", [None, EXAMPLE_SECRET_KEY, "too-short"], ids=["missing", "example", "short"]
)
def test_production_refuses_a_missing_example_or_short_secret_key(secret: str | None) -> None:
    values: dict[str, object] = dict(PRODUCTION)
    if secret is not None:
        values["SECRET_KEY"] = secret
    with pytest.raises(ValidationError, match="refusing to start in production"):
        settings(**values)


def test_production_refuses_the_example_superuser_password() -> None:
    with pytest.raises(ValidationError, match="FIRST_SUPERUSER_PASSWORD"):
        settings(
            **PRODUCTION,
            SECRET_KEY=GOOD_KEY,
            FIRST_SUPERUSER_EMAIL="admin@example.com",
            FIRST_SUPERUSER_PASSWORD="changethis-superuser",
        )


def test_production_starts_with_a_real_secret() -> None:
    assert settings(**PRODUCTION, SECRET_KEY=GOOD_KEY).ENVIRONMENT == "production"


def test_local_tolerates_the_example_secret_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings(ENVIRONMENT="local")
    assert "SECRET_KEY" in caplog.text


def test_cors_origins_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", "https://a.example, https://b.example")
    assert settings().BACKEND_CORS_ORIGINS == ["https://a.example", "https://b.example"]


def test_the_example_env_file_is_read_with_the_users_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    for name in ("POSTGRES_PW", "SECRET_KEY", "POSTGRES_URL"):
        monkeypatch.delenv(name, raising=False)
    loaded = Settings(_env_file=example)
    assert loaded.POSTGRES_PW.get_secret_value() == "`b{5:P3kUv5LdJF."
    assert loaded.POSTGRES_URL == "localhost:5432"


def test_every_setting_is_listed_in_the_example_env_file() -> None:
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    listed = {
        line.split("=", 1)[0]
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert set(Settings.model_fields) <= listed


@pytest.mark.parametrize("level", ["warning", "Warning", "WARNING"])
def test_log_level_is_read_in_any_case(level: str) -> None:
    """gunicorn.conf.py reads the same variable in lower case."""
    assert settings(LOG_LEVEL=level).LOG_LEVEL == "WARNING"


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValidationError, match="LOG_LEVEL"):
        settings(LOG_LEVEL="verbose")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("PT1H", timedelta(hours=1)), ("900", timedelta(seconds=900)), ("0", timedelta(0))],
)
def test_the_sweep_interval_reads_a_duration_and_zero_turns_it_off(
    raw: str, expected: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWEEP_INTERVAL", raw)
    assert settings().SWEEP_INTERVAL == expected


def test_the_sweep_settings_default_to_an_hour_and_a_week_and_refuse_negatives() -> None:
    defaults = settings()
    assert (defaults.SWEEP_INTERVAL, defaults.SESSION_RETENTION) == (
        timedelta(hours=1),
        timedelta(days=7),
    )
    for name in ("SWEEP_INTERVAL", "SESSION_RETENTION"):
        with pytest.raises(ValidationError, match=name):
            settings(**{name: "-1"})
