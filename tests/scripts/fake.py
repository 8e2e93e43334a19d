"""A fake of scripts.runner.Runner: the docker (and curl, openssl...) commands
answer with recorded outputs, the clock moves only when the script sleeps.

The real commands run in the stack suite (tests/stack/), against a real engine;
here the scripts' decisions are checked on what those commands print."""

from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from scripts.runner import CommandFailed, Result, Runner

# What a command answers: its output, a Result, or a function of its arguments.
Answer = str | Result | Callable[[tuple[str, ...]], "str | Result"]
START = 1_700_000_000


class FakeRunner(Runner):
    def __init__(
        self,
        answers: list[tuple[str, Answer]],
        environ: MutableMapping[str, str] | None = None,
        tools: tuple[str, ...] = ("curl", "certutil"),
        stack_deploy_status: int = 0,
    ) -> None:
        super().__init__({} if environ is None else environ)
        # First match wins: (a part of the command line, its answer). Unmatched: success.
        self.answers = answers
        self.tools = tools
        self.stack_deploy_status = stack_deploy_status
        self.calls: list[str] = []
        self.time = 0.0

    def run(self, *args: str, check: bool = True, **options: Any) -> Result:
        line = " ".join(args)
        self.calls.append(line)
        result = Result(0)
        for pattern, answer in self.answers:
            if pattern in line:
                given = answer(args) if callable(answer) else answer
                result = Result(0, given) if isinstance(given, str) else given
                break
        stdout_path: Path | None = options.get("stdout_path")
        if stdout_path:
            stdout_path.write_text(result.stdout)
        if check and not result.ok:
            raise CommandFailed(args, result.returncode)
        return result

    def filtered(self, *args: str, drop_prefix: str) -> int:
        self.calls.append(" ".join(args))
        return self.stack_deploy_status

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.tools else None

    def clock(self) -> float:
        return self.time

    def now(self) -> int:
        return START + int(self.time)

    def sleep(self, seconds: float) -> None:
        self.time += seconds

    def token(self) -> int:
        return 4242

    def called(self, pattern: str) -> list[str]:
        """The command lines that contain `pattern`, in order."""
        return [call for call in self.calls if pattern in call]

    def index(self, pattern: str) -> int:
        """Where the first command line containing `pattern` ran."""
        return next(i for i, call in enumerate(self.calls) if pattern in call)
