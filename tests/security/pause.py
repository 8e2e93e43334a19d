"""Hold a request in the middle of its work, to race another request into that gap."""

import asyncio
from typing import Any

import pytest

from app.auth import passwords


class PausedCall:
    """The next call of `module.name` (an async function) waits for `release`
    after setting `entered`; later calls run as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self._armed = True
        real = getattr(module, name)

        async def paused(*args: Any, **kwargs: Any) -> Any:
            if self._armed:
                self._armed = False
                self.entered.set()
                await self.release.wait()
            return await real(*args, **kwargs)

        monkeypatch.setattr(module, name, paused)

    async def wait_until_entered(self) -> None:
        await asyncio.wait_for(self.entered.wait(), timeout=10)


class PausedPasswordCheck(PausedCall):
    """Holds the app's next bcrypt check: a login between reading the account and
    opening its session."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch, passwords, "verify_password")
