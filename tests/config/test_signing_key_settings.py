"""Signing-key settings are read and checked once, when the settings load: a key
that cannot be used stops start-up with a message naming the setting (never a
500 at request time, never the key itself in the message)."""

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr, ValidationError

from app.config import EXAMPLE_SECRET_KEY
from app.signing_keys import EDDSA, HS256, hmac_kid, jwk_thumbprint
from tests.auth.keys import NEW_SECRET, OLD_SECRET, ed25519_key, private_pem, public_pem
from tests.config import settings
from tests.conftest import TEST_TOTP_KEY

KEY = ed25519_key("settings")
RETIRED = ed25519_key("settings retired")
EC_KEY_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)


def test_hs256_signs_with_the_secret_and_verifies_the_previous_ones() -> None:
    ring = settings(SECRET_KEY=NEW_SECRET, SECRET_KEY_PREVIOUS=f" {OLD_SECRET} ,").keyring
    assert (ring.signing.kid, ring.signing.algorithm) == (hmac_kid(NEW_SECRET), HS256)
    assert list(ring.by_kid) == [hmac_kid(NEW_SECRET), hmac_kid(OLD_SECRET)]
    assert ring.without_kid == ()


def test_the_hmac_kid_is_a_labelled_truncated_hash_not_the_key() -> None:
    kid = hmac_kid(NEW_SECRET)
    assert len(kid) == 16
    assert int(kid, 16) >= 0
    assert kid not in NEW_SECRET
    assert kid != hmac_kid(OLD_SECRET)
    assert not hashlib.sha256(NEW_SECRET.encode()).hexdigest().startswith(kid)


def test_eddsa_signs_with_the_private_key_and_verifies_the_retired_public_ones() -> None:
    ring = settings(
        JWT_ALGORITHM="EdDSA",
        JWT_PRIVATE_KEY=private_pem(KEY),
        JWT_PUBLIC_KEYS_PREVIOUS=public_pem(RETIRED),
        SECRET_KEY_PREVIOUS=OLD_SECRET,
    ).keyring
    current, retired = jwk_thumbprint(KEY.public_key()), jwk_thumbprint(RETIRED.public_key())
    assert (ring.signing.kid, ring.signing.algorithm) == (current, EDDSA)
    # The current SECRET_KEY verifies nothing with EdDSA; a previous one still does.
    assert list(ring.by_kid) == [current, hmac_kid(OLD_SECRET), retired]
    assert [kid for kid, _ in ring.public_keys()] == [current, retired]


def test_pem_keys_are_read_from_files_or_one_line_with_escaped_newlines(tmp_path: Path) -> None:
    key_file, retired_file = tmp_path / "key.pem", tmp_path / "retired.pem"
    key_file.write_text(private_pem(KEY))
    retired_file.write_text(public_pem(RETIRED) + public_pem(ed25519_key("another retired")))
    from_files = settings(
        JWT_ALGORITHM="EdDSA",
        JWT_PRIVATE_KEY_FILE=str(key_file),
        JWT_PUBLIC_KEYS_PREVIOUS_FILE=str(retired_file),
    ).keyring
    one_line = settings(
        JWT_ALGORITHM="EdDSA", JWT_PRIVATE_KEY=private_pem(KEY).replace("\n", "\\n")
    ).keyring
    assert from_files.signing.kid == one_line.signing.kid == jwk_thumbprint(KEY.public_key())
    assert len(from_files.public_keys()) == 3


def test_a_transition_accepts_kidless_tokens_with_the_hmac_keys_only() -> None:
    ring = settings(
        SECRET_KEY=NEW_SECRET, SECRET_KEY_PREVIOUS=OLD_SECRET, JWT_REQUIRE_KID="false"
    ).keyring
    assert [key.kid for key in ring.without_kid] == [hmac_kid(NEW_SECRET), hmac_kid(OLD_SECRET)]
    assert {key.algorithm for key in ring.without_kid} == {HS256}


UNUSABLE = {
    "EdDSA without a private key": ({"JWT_ALGORITHM": "EdDSA"}, "JWT_PRIVATE_KEY"),
    "a private key that is not PEM": (
        {"JWT_ALGORITHM": "EdDSA", "JWT_PRIVATE_KEY": "not a key"},
        "JWT_PRIVATE_KEY holds text that is not a PEM block",
    ),
    "a damaged PEM": (
        {
            "JWT_ALGORITHM": "EdDSA",
            "JWT_PRIVATE_KEY": private_pem(KEY).replace("MC4CAQAw", "MC4CAQAx"),
        },
        "JWT_PRIVATE_KEY is not a readable",
    ),
    "an EC key": (
        {"JWT_ALGORITHM": "EdDSA", "JWT_PRIVATE_KEY": EC_KEY_PEM},
        "JWT_PRIVATE_KEY is not an Ed25519 key",
    ),
    "two private keys": (
        {"JWT_ALGORITHM": "EdDSA", "JWT_PRIVATE_KEY": private_pem(KEY) * 2},
        "exactly one PEM private key",
    ),
    "a private key with HS256": ({"JWT_PRIVATE_KEY": private_pem(KEY)}, "JWT_ALGORITHM"),
    # A key file both set and inline, or unreadable: tests/config/test_setting_files.py
    "a private key among the retired public keys": (
        {"JWT_PUBLIC_KEYS_PREVIOUS": private_pem(RETIRED)},
        "JWT_PUBLIC_KEYS_PREVIOUS must hold public keys only",
    ),
    "an unknown algorithm": ({"JWT_ALGORITHM": "RS256"}, "JWT_ALGORITHM"),
}


@pytest.mark.parametrize(("values", "message"), UNUSABLE.values(), ids=UNUSABLE.keys())
def test_an_unusable_key_stops_start_up_naming_the_setting(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        settings(**values)
    # The error names the setting, never the key material.
    assert "PRIVATE KEY-----" not in str(refused.value)
    assert private_pem(KEY).splitlines()[1] not in str(refused.value)


@pytest.mark.parametrize(
    "previous",
    [EXAMPLE_SECRET_KEY, "short", f"{NEW_SECRET},{EXAMPLE_SECRET_KEY}"],
    ids=["example", "short", "one of two"],
)
def test_production_refuses_a_weak_previous_secret(previous: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY_PREVIOUS") as refused:
        settings(ENVIRONMENT="production", SECRET_KEY=NEW_SECRET, SECRET_KEY_PREVIOUS=previous)
    assert EXAMPLE_SECRET_KEY not in str(refused.value)
    assert NEW_SECRET not in str(refused.value)


def test_production_starts_with_strong_previous_secrets_and_eddsa() -> None:
    loaded = settings(
        ENVIRONMENT="production",
        TOTP_ENCRYPTION_KEYS=TEST_TOTP_KEY,
        SECRET_KEY=NEW_SECRET,
        SECRET_KEY_PREVIOUS=OLD_SECRET,
        JWT_ALGORITHM="EdDSA",
        JWT_PRIVATE_KEY=private_pem(KEY),
    )
    assert loaded.keyring.signing.algorithm == EDDSA


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY_PREVIOUS", f"{OLD_SECRET},{NEW_SECRET}")
    monkeypatch.setenv("JWT_ALGORITHM", "EdDSA")
    monkeypatch.setenv("JWT_PRIVATE_KEY", private_pem(KEY))
    loaded = settings()
    assert [key.get_secret_value() for key in loaded.SECRET_KEY_PREVIOUS] == [
        OLD_SECRET,
        NEW_SECRET,
    ]
    assert loaded.keyring.signing.kid == jwk_thumbprint(KEY.public_key())


def test_a_copy_with_other_keys_signs_with_its_own() -> None:
    """model_copy runs no validator; tests (app_with) rely on the copy's own keys."""
    original = settings(SECRET_KEY=OLD_SECRET)
    copy = original.model_copy(update={"SECRET_KEY": SecretStr(NEW_SECRET)})
    assert copy.keyring.signing.kid == hmac_kid(NEW_SECRET)
    assert original.keyring.signing.kid == hmac_kid(OLD_SECRET)
