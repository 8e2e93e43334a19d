"""The images the stack runs, as pinned in the compose files: the one place their
tags are written is each `image: ${NAME_IMAGE:-name:tag}` default there.

`python3 scripts/images.py` prints them, one per line (for the shell scripts);
the stack suite and the benchmark import `pinned_images`.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = (ROOT / "compose.yaml", ROOT / "tests" / "stack" / "compose.test.yaml")
PIN = re.compile(r"\$\{(?P<variable>[A-Z_]+_IMAGE):-(?P<image>[^}]+)\}")
# Built from this repository, not pulled.
OWN_IMAGES = {"APP_IMAGE", "PGBOUNCER_IMAGE"}


def pinned_images(*files: Path) -> dict[str, str]:
    """{variable: image} for every pinned third-party image in `files`."""
    pins: dict[str, str] = {}
    for path in files or COMPOSE_FILES:
        for match in PIN.finditer(path.read_text()):
            if match["variable"] not in OWN_IMAGES:
                pins[match["variable"]] = match["image"]
    return pins


if __name__ == "__main__":
    print("\n".join(pinned_images().values()))
