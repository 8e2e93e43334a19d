"""Secrets from files (the `NAME_FILE` convention of Docker secrets and the
official images): NAME_FILE names a file whose content is NAME's value, read once
when the settings load. One trailing newline is stripped, nothing else; NAME and
NAME_FILE together, or a file that cannot be read, stop start-up with a message
naming the variable and the path, never the secret."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from app.config import SettingFileError, Settings
from app.encryption_keys import EXAMPLE_ENCRYPTION_KEY
from app.signing_keys import hmac_kid, jwk_thumbprint
from devtools.embedded_postgres import EmbeddedPostgres
from tests.auth.keys import NEW_SECRET, OLD_SECRET, ed25519_key, private_pem, public_pem
from tests.config import settings
from tests.conftest import (
    CLIENT_ADDRESS,
    SPECIAL_PASSWORD,
    TEST_TOTP_KEY,
    app_loaded,
    client_at,
    me,
    register,
)

KEY = ed25519_key("setting files")
RETIRED = ed25519_key("setting files retired")


def secret_file(tmp_path: Path, content: str | bytes, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# name, the file's content (as `echo ... > file` writes it), what the setting then holds
SECRETS: dict[str, tuple[str, Callable[[Settings], object], object]] = {
    "SECRET_KEY": (
        f"{NEW_SECRET}\n",
        lambda loaded: (plain(loaded.SECRET_KEY), loaded.keyring.signing.kid),
        (NEW_SECRET, hmac_kid(NEW_SECRET)),
    ),
    "SECRET_KEY_PREVIOUS": (
        f"{OLD_SECRET},{NEW_SECRET}\n",
        lambda loaded: [plain(key) for key in loaded.SECRET_KEY_PREVIOUS],
        [OLD_SECRET, NEW_SECRET],
    ),
    "POSTGRES_PW": (
        f"{SPECIAL_PASSWORD}\n",
        lambda loaded: (plain(loaded.POSTGRES_PW), loaded.database_url().password),
        (SPECIAL_PASSWORD, SPECIAL_PASSWORD),
    ),
    "FIRST_SUPERUSER_PASSWORD": (
        "a superuser's password \n",
        lambda loaded: plain(loaded.FIRST_SUPERUSER_PASSWORD),
        "a superuser's password ",
    ),
    "JWT_PRIVATE_KEY": (
        private_pem(KEY),
        lambda loaded: loaded.keyring.signing.kid,
        jwk_thumbprint(KEY.public_key()),
    ),
    "JWT_PUBLIC_KEYS_PREVIOUS": (
        public_pem(RETIRED),
        lambda loaded: [kid for kid, _ in loaded.keyring.public_keys()][1:],
        [jwk_thumbprint(RETIRED.public_key())],
    ),
    "TOTP_ENCRYPTION_KEYS": (
        f"{TEST_TOTP_KEY},{EXAMPLE_ENCRYPTION_KEY}\n",
        lambda loaded: [plain(key) for key in loaded.TOTP_ENCRYPTION_KEYS],
        [TEST_TOTP_KEY, EXAMPLE_ENCRYPTION_KEY],
    ),
    "OIDC_CLIENT_SECRETS": (
        '{"google": "a client secret"}\n',
        lambda loaded: plain(loaded.OIDC_CLIENT_SECRETS),
        '{"google": "a client secret"}',
    ),
    "SMTP_PASSWORD": (
        "an SMTP app password \n",
        lambda loaded: plain(loaded.SMTP_PASSWORD),
        "an SMTP app password ",
    ),
}
EDDSA = {"JWT_ALGORITHM": "EdDSA", "JWT_PRIVATE_KEY": private_pem(KEY)}
NEEDS = {"JWT_PRIVATE_KEY": {"JWT_ALGORITHM": "EdDSA"}, "JWT_PUBLIC_KEYS_PREVIOUS": EDDSA}


@pytest.mark.parametrize(("name", "case"), SECRETS.items(), ids=SECRETS.keys())
def test_each_secret_is_read_from_the_file_its_name_file_variable_names(
    name: str,
    case: tuple[str, Callable[[Settings], object], object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content, read, expected = case
    monkeypatch.setenv(f"{name}_FILE", str(secret_file(tmp_path, content)))
    assert read(settings(**NEEDS.get(name, {}))) == expected


def test_every_secret_setting_can_come_from_a_file(tmp_path: Path) -> None:
    """Whatever secret is added later: NAME_FILE applies to every setting."""
    secrets = [
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    ]
    assert {"SECRET_KEY", "SECRET_KEY_PREVIOUS", "POSTGRES_PW", "FIRST_SUPERUSER_PASSWORD"} <= set(
        secrets
    )
    for name in secrets:
        content, read, expected = SECRETS[name]
        path = secret_file(tmp_path, content, name)
        assert read(settings(**{f"{name}_FILE": path}, **NEEDS.get(name, {}))) == expected


Place = Literal["argument", "environment", ".env"]
PLACES: tuple[Place, ...] = ("argument", "environment", ".env")


def load_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *given: tuple[Place, str, object]
) -> Settings:
    """Settings loaded with each (place, variable, value) given in its place."""
    arguments: dict[str, Any] = {n: v for place, n, v in given if place == "argument"}
    dotenv = tmp_path / "dotenv"
    dotenv.write_text("".join(f"{n}='{v}'\n" for place, n, v in given if place == ".env"))
    for place, name, value in given:
        if place == "environment":
            monkeypatch.setenv(name, str(value))
    return Settings(_env_file=dotenv, **arguments)


@pytest.mark.parametrize("place", PLACES)
def test_name_file_is_read_wherever_settings_are(
    place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(tmp_path, SPECIAL_PASSWORD + "\n")
    loaded = load_from(tmp_path, monkeypatch, (place, "POSTGRES_PW_FILE", path))
    assert loaded.POSTGRES_PW.get_secret_value() == SPECIAL_PASSWORD


def test_name_file_is_read_in_any_case_like_every_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(tmp_path, SPECIAL_PASSWORD)
    loaded = load_from(tmp_path, monkeypatch, ("environment", "postgres_pw_file", path))
    assert loaded.POSTGRES_PW.get_secret_value() == SPECIAL_PASSWORD


@pytest.mark.parametrize(
    ("content", "value"),
    [
        ("pw\n", "pw"),
        ("pw\r\n", "pw"),
        ("pw\n\n", "pw\n"),
        ("pw  \n", "pw  "),
        ("pw  ", "pw  "),
        ("  pw\t", "  pw\t"),
        ("pw", "pw"),
    ],
    ids=["newline", "CRLF", "two newlines", "spaces", "spaces, no newline", "tab", "bare"],
)
def test_one_trailing_newline_is_stripped_nothing_else(
    content: str, value: str, tmp_path: Path
) -> None:
    loaded = settings(POSTGRES_PW_FILE=secret_file(tmp_path, content))
    assert loaded.POSTGRES_PW.get_secret_value() == value


def test_an_empty_name_file_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """As every variable: `POSTGRES_PW_FILE=''` (an empty line in .env) means unset."""
    monkeypatch.setenv("POSTGRES_PW_FILE", "")
    assert settings(POSTGRES_PW="inline").POSTGRES_PW.get_secret_value() == "inline"


def test_the_file_is_read_once_when_the_settings_load(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "first\n")
    loaded = settings(POSTGRES_PW_FILE=path)
    path.write_text("second\n")
    assert loaded.POSTGRES_PW.get_secret_value() == "first"
    path.unlink()
    assert loaded.database_url().password == "first"


def test_settings_validate_what_the_file_holds(tmp_path: Path) -> None:
    """The file's content is the value: production still refuses a weak secret."""
    path = secret_file(tmp_path, "weak-secret-7\n")
    with pytest.raises(ValidationError, match="SECRET_KEY must hold random values") as refused:
        settings(ENVIRONMENT="production", SECRET_KEY_FILE=path)
    assert "weak-secret-7" not in str(refused.value)


SECRET = "s3cret-that-must-never-be-echoed"


@pytest.mark.parametrize("file_place", PLACES)
@pytest.mark.parametrize("value_place", PLACES)
def test_name_and_name_file_together_stop_start_up(
    value_place: Place, file_place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wherever each is given (the environment usually wins over .env: not here)."""
    path = secret_file(tmp_path, SPECIAL_PASSWORD)
    given = [(value_place, "POSTGRES_PW", SECRET), (file_place, "POSTGRES_PW_FILE", path)]
    with pytest.raises(SettingFileError) as refused:
        load_from(tmp_path, monkeypatch, *given)
    assert str(refused.value) == (
        "POSTGRES_PW and POSTGRES_PW_FILE are both set (environment, .env or arguments): keep one"
    )


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_PRIVATE_KEY", "FIRST_SUPERUSER_PASSWORD"])
def test_every_name_file_refuses_its_name_too(name: str, tmp_path: Path) -> None:
    value = private_pem(KEY) if name == "JWT_PRIVATE_KEY" else NEW_SECRET
    path = secret_file(tmp_path, value)
    with pytest.raises(SettingFileError, match=f"{name} and {name}_FILE are both set") as refused:
        settings(**{name: value, f"{name}_FILE": path, **NEEDS.get(name, {})})
    assert value not in str(refused.value)


UNREADABLE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda tmp: tmp / "missing", "cannot read {path}: No such file or directory"),
    "a directory": (lambda tmp: tmp, "cannot read {path}: Is a directory"),
    "not UTF-8": (
        lambda tmp: secret_file(tmp, SECRET.encode() + b"\xff\xfe"),
        "{path} is not UTF-8 text",
    ),
}


@pytest.mark.parametrize(("make", "reason"), UNREADABLE.values(), ids=UNREADABLE.keys())
@pytest.mark.parametrize("name", ["POSTGRES_PW", "SECRET_KEY", "JWT_PRIVATE_KEY"])
def test_a_file_that_cannot_be_read_stops_start_up_naming_variable_and_path(
    name: str,
    make: Callable[[Path], Path],
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = make(tmp_path)
    monkeypatch.setenv(f"{name}_FILE", str(path))
    with pytest.raises(SettingFileError) as refused:
        settings(**NEEDS.get(name, {}))
    assert str(refused.value) == f"{name}_FILE: " + reason.format(path=path)
    assert SECRET not in str(refused.value)
    assert refused.value.__cause__ is None  # no chained error quoting the content


def test_a_copy_takes_settings_not_files(tmp_path: Path) -> None:
    """model_copy reads no file: a NAME_FILE there would silently do nothing."""
    with pytest.raises(TypeError, match="POSTGRES_PW_FILE"):
        settings().model_copy(update={"POSTGRES_PW_FILE": secret_file(tmp_path, "pw")})


# End to end: the app on the suite's real PostgreSQL, whose password is the
# user's example, read from a file.


async def assert_serves_with_the_database(application: FastAPI) -> None:
    async with client_at(application, CLIENT_ADDRESS) as client:
        assert (await client.get("/api/health/ready")).status_code == 200
        pair = await register(client, "file-secret@example.com")  # a committed write
        assert (await me(client, pair["access_token"])).status_code == 200  # the read pool


async def test_the_app_connects_with_postgres_pw_file(
    app: FastAPI, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """(`app` only so the tables are emptied afterwards.)"""
    path = secret_file(tmp_path, f"{postgres.password}\n")
    assert postgres.password == SPECIAL_PASSWORD
    async with app_loaded(postgres, POSTGRES_PW=None, POSTGRES_PW_FILE=path) as application:
        assert application.state.settings.POSTGRES_PW.get_secret_value() == SPECIAL_PASSWORD
        await assert_serves_with_the_database(application)


async def test_the_app_connects_with_postgres_pw_file_from_the_environment(
    app: FastAPI, postgres: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a container given a Docker secret: only POSTGRES_PW_FILE is set."""
    monkeypatch.setenv("POSTGRES_PW_FILE", str(secret_file(tmp_path, f"{SPECIAL_PASSWORD}\n")))
    async with app_loaded(postgres, POSTGRES_PW=None) as application:
        await assert_serves_with_the_database(application)


async def test_the_app_uses_what_the_file_holds(
    app: FastAPI, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """The control: a file holding another password, and the database refuses."""
    path = secret_file(tmp_path, f"{SPECIAL_PASSWORD}x\n")
    values: dict[str, Any] = {"POSTGRES_PW": None, "POSTGRES_PW_FILE": path}
    async with (
        app_loaded(postgres, **values) as application,
        client_at(application, CLIENT_ADDRESS) as client,
    ):
        assert (await client.get("/api/health/ready")).status_code == 503
