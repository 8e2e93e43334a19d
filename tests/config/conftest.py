"""Settings tests state every value themselves: nothing leaks in from the
environment (a name, or its NAME_FILE)."""

import pytest

from app.config import Settings


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
