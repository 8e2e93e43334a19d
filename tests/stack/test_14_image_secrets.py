"""No secret of the deployment ends up in the app image.

The secrets reach the containers at run time only (compose's env_file). The
image the stack runs is searched for this run's secret values: its history and
configuration, and every file of every layer (`docker save`), deleted ones too.
"""

import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.stack.conftest import Stack, record_figures, run, timed

SECRET_SETTINGS = ("SECRET_KEY", "POSTGRES_PW", "FIRST_SUPERUSER_PASSWORD")
# A string the image does contain (gunicorn.conf.py): the scan must find it, or
# it found nothing because it read nothing.
KNOWN_CONTENT = b"DRAIN_PROBE_PORT"


@pytest.fixture(scope="module")
def secrets(configured_stack: Stack) -> dict[str, bytes]:
    values = {name: configured_stack.settings[name].encode() for name in SECRET_SETTINGS}
    assert all(len(value) >= 12 for value in values.values()), "secrets too short to search for"
    return values


def layer_files(image_tar: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every regular file in every layer of a `docker save` archive."""
    with tarfile.open(fileobj=image_tar, mode="r|") as image:
        for entry in image:
            if not entry.isfile() or not entry.name.endswith(("layer.tar", ".tar")):
                continue
            layer_tar = image.extractfile(entry)
            assert layer_tar is not None
            with tarfile.open(fileobj=layer_tar, mode="r|") as layer:
                for member in layer:
                    if member.isfile():
                        content = layer.extractfile(member)
                        assert content is not None
                        yield f"{entry.name}:{member.name}", content.read()


def test_image_history_and_configuration_hold_no_secret(
    configured_stack: Stack, secrets: dict[str, bytes]
) -> None:
    image = configured_stack.settings["APP_IMAGE"]
    history = run(["docker", "history", "--no-trunc", "--format", "{{json .}}", image]).stdout
    configuration = run(["docker", "image", "inspect", image]).stdout
    assert "gunicorn" in configuration  # the real image's configuration (its CMD)
    for name, value in secrets.items():
        assert value.decode() not in history, f"{name} in the image history"
        assert value.decode() not in configuration, f"{name} in the image configuration"
        # Also as JSON writes it (the password's backtick and braces survive as-is).
        assert json.dumps(value.decode())[1:-1] not in configuration, name


def test_no_file_in_any_image_layer_holds_a_secret(
    configured_stack: Stack, secrets: dict[str, bytes], tmp_path: Path
) -> None:
    started = time.monotonic()
    archive = tmp_path / "app-image.tar"
    run(["docker", "save", "--output", str(archive), configured_stack.settings["APP_IMAGE"]])
    files = scanned_bytes = 0
    known_content_seen = False
    found: list[str] = []
    with archive.open("rb") as image_tar:
        for path, content in layer_files(image_tar):
            files += 1
            scanned_bytes += len(content)
            known_content_seen = known_content_seen or KNOWN_CONTENT in content
            found += [f"{name} in {path}" for name, value in secrets.items() if value in content]
    record_figures(
        "app image secret scan",
        {
            "files": files,
            "MB scanned": round(scanned_bytes / 1e6, 1),
            "secrets found": len(found),
        },
    )

    assert known_content_seen, "the scan did not read the image's own files"
    assert not found, found
    timed("app image: every layer's files searched for the secrets", started)
