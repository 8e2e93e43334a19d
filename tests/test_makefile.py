"""`make help`, the first command a newcomer runs."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_make_help_lists_the_targets_without_colour_codes_off_a_terminal() -> None:
    # stdout is a pipe here, as when a user pipes it or a CI log captures it.
    listed = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "\x1b" not in listed
    targets = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"up", "test", "bench", "trust-ca", "backup"} <= targets
