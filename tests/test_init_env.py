"""scripts/init_env.py: a first .env with fresh secrets, and the local mail catcher."""

import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from scripts import init_env


def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    tmp_path.mkdir()
    target = tmp_path / ".env"
    monkeypatch.setattr(sys, "argv", ["init_env.py", str(target)])
    assert init_env.main() == 0
    assert target.stat().st_mode & 0o777 == 0o600
    lines = [line for line in target.read_text().splitlines() if "=" in line]
    return dict(line.split("=", 1) for line in lines if not line.startswith("#"))


def test_a_new_local_env_has_fresh_secrets_and_mails_to_the_catcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = written(tmp_path / "a", monkeypatch), written(tmp_path / "b", monkeypatch)
    for name in ("SECRET_KEY", "TOTP_ENCRYPTION_KEYS", "POSTGRES_PW", "FIRST_SUPERUSER_PASSWORD"):
        assert first[name] != second[name]
    Fernet(first["TOTP_ENCRYPTION_KEYS"].strip("'"))  # a key the app can use
    assert first["ENVIRONMENT"] == "'local'"
    assert first["COMPOSE_PROFILES"] == "'mail-catcher'"
    assert first["SMTP_HOST"] == "'mailcatcher'"
    assert first["SMTP_PORT"] == "'1025'"
    assert first["SMTP_SECURITY"] == "'none'"


def test_an_existing_env_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / ".env"
    target.write_text("SECRET_KEY='mine'\n")
    monkeypatch.setattr(sys, "argv", ["init_env.py", str(target)])
    assert init_env.main() == 0
    assert target.read_text() == "SECRET_KEY='mine'\n"
