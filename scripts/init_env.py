#!/usr/bin/env python3
"""Write `.env` from `.env.example`, with fresh random values for the example secrets.

Never overwrites an existing `.env`. Used by `make up` and `make dev`.
"""

import re
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


GENERATED: dict[str, Callable[[], str]] = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "POSTGRES_PW": random_password,
    "FIRST_SUPERUSER_PASSWORD": lambda: secrets.token_urlsafe(18),
}


def render(example: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return f"{match['key']}='{GENERATED[match['key']]()}'"

    keys = "|".join(GENERATED)
    return re.sub(rf"^(?P<key>{keys})=.*$", replace, example, flags=re.MULTILINE)


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".env"
    if target.exists():
        print(f"{target} exists; leaving it as it is")
        return 0
    target.write_text(render((ROOT / ".env.example").read_text()))
    target.chmod(0o600)
    print(f"wrote {target} with fresh secrets (SECRET_KEY, POSTGRES_PW, FIRST_SUPERUSER_PASSWORD)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
