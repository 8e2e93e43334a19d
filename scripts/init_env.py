#!/usr/bin/env python3
"""Write `.env` from `.env.example`, with fresh random values for the example secrets.

Never overwrites an existing `.env`. Used by `make up` and `make dev`.
"""

import base64
import secrets
import string
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Punctuation like the user's own example password, minus the single quote that
# delimits values in .env, and `$`/`\` that some tools would still interpret.
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "`{}:.,-_~!@#%^*()[]+=/?"


def random_password(length: int = 24) -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def fernet_key() -> str:
    """A key as `cryptography`'s Fernet.generate_key() makes it: 32 random bytes,
    url-safe base64 (the standard library only: this runs before any install)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


GENERATED: dict[str, Callable[[], str]] = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "TOTP_ENCRYPTION_KEYS": fernet_key,
    "POSTGRES_PW": random_password,
    "FIRST_SUPERUSER_PASSWORD": lambda: secrets.token_urlsafe(18),
}


def render(example: str, values: dict[str, str]) -> str:
    """`example` (the text of `.env.example`) with each of `values` set, single-quoted
    so `source`, compose and the app read it literally; a key the example lacks is
    appended. The stack suite and the benchmark write their `.env` files with it too."""
    lines, seen = [], set()
    for line in example.splitlines():
        key = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and key in values:
            line = f"{key}='{values[key]}'"
            seen.add(key)
        lines.append(line)
    lines += [f"{key}='{value}'" for key, value in values.items() if key not in seen]
    return "\n".join(lines) + "\n"


# A local stack (the example's ENVIRONMENT) sends its mails to the mail catcher.
LOCAL_MAIL = {
    "COMPOSE_PROFILES": "mail-catcher",
    "SMTP_HOST": "mailcatcher",
    "SMTP_PORT": "1025",
    "SMTP_SECURITY": "none",
}


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".env"
    if target.exists():
        print(f"{target} exists; leaving it as it is")
        return 0
    fresh = {key: generate() for key, generate in GENERATED.items()}
    example = (ROOT / ".env.example").read_text()
    if "\nENVIRONMENT='local'\n" in example:
        fresh |= LOCAL_MAIL
    target.write_text(render(example, fresh))
    target.chmod(0o600)
    print(f"wrote {target} with fresh secrets ({', '.join(GENERATED)})")
    if "SMTP_HOST" in fresh:
        print(
            "mails go to the local mail catcher (MailDev): https://mail.<DOMAIN> once `make up` ran"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
