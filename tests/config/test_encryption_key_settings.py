"""TOTP_ENCRYPTION_KEYS are read and checked once, when the settings load, like
the signing keys: a key that is no Fernet key stops start-up naming the setting
(never the key), production refuses the example, the first key encrypts and
every key decrypts, and a copy with other keys uses its own."""

import pytest
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr, ValidationError

from app.encryption_keys import EXAMPLE_ENCRYPTION_KEY
from tests.auth.keys import NEW_SECRET
from tests.config import settings
from tests.conftest import TEST_TOTP_KEY

NEW_KEY = Fernet.generate_key().decode()


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old = settings(TOTP_ENCRYPTION_KEYS=TEST_TOTP_KEY).totp_cipher.encrypt(b"seed")
    rotated = settings(TOTP_ENCRYPTION_KEYS=f" {NEW_KEY} , {TEST_TOTP_KEY},").totp_cipher
    assert rotated.decrypt(old) == b"seed"
    new = rotated.encrypt(b"seed")
    assert Fernet(NEW_KEY).decrypt(new) == b"seed"
    with pytest.raises(InvalidToken):
        Fernet(TEST_TOTP_KEY).decrypt(new)


@pytest.mark.parametrize("keys", ["not-a-fernet-key", f"{TEST_TOTP_KEY},short", ""])
def test_a_key_that_is_no_fernet_key_stops_start_up_naming_the_setting(keys: str) -> None:
    with pytest.raises(ValidationError, match="TOTP_ENCRYPTION_KEYS") as refused:
        settings(TOTP_ENCRYPTION_KEYS=keys)
    if TEST_TOTP_KEY in keys:
        assert TEST_TOTP_KEY not in str(refused.value)


@pytest.mark.parametrize(
    "keys", [None, EXAMPLE_ENCRYPTION_KEY, f"{TEST_TOTP_KEY},{EXAMPLE_ENCRYPTION_KEY}"]
)
def test_production_refuses_the_example_key(keys: str | None) -> None:
    values: dict[str, object] = {"ENVIRONMENT": "production", "SECRET_KEY": NEW_SECRET}
    if keys is not None:
        values["TOTP_ENCRYPTION_KEYS"] = keys
    with pytest.raises(ValidationError, match="TOTP_ENCRYPTION_KEYS must hold keys of its own"):
        settings(**values)


def test_local_tolerates_the_example_key_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings(ENVIRONMENT="local")
    assert "TOTP_ENCRYPTION_KEYS" in caplog.text


def test_a_copy_with_other_keys_encrypts_with_its_own() -> None:
    original = settings(TOTP_ENCRYPTION_KEYS=TEST_TOTP_KEY)
    copy = original.model_copy(update={"TOTP_ENCRYPTION_KEYS": [SecretStr(NEW_KEY)]})
    assert Fernet(NEW_KEY).decrypt(copy.totp_cipher.encrypt(b"seed")) == b"seed"
    with pytest.raises(InvalidToken):
        copy.totp_cipher.decrypt(original.totp_cipher.encrypt(b"seed"))
