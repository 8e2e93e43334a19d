"""The deploy scripts' one seam to the outside: the commands they run (docker,
curl, openssl...), the clock and the sleeps.

Every decision of scripts/stack.py, scripts/swarm.py and scripts/deploy.py is
taken on what these calls return, so the unit tests (tests/scripts/) replace
this class with a fake that answers with recorded outputs; the stack suite
(tests/stack/) runs the real one against a real engine. Standard library only:
it runs on the deploy host.
"""

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

# The shell's status for a command it cannot find.
NOT_FOUND = 127


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandFailed(Exception):
    """A command that had to succeed did not: the script exits with its status,
    as `set -e` did (the command said why on stderr)."""

    def __init__(self, args: tuple[str, ...], returncode: int) -> None:
        super().__init__(f"{' '.join(args)} exited with {returncode}")
        self.returncode = returncode


class Runner:
    """Runs commands with the scripts' environment (`environ`, which loading the
    settings file fills in, as `set -a; source .env` did)."""

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        self.environ: MutableMapping[str, str] = os.environ if environ is None else environ

    def run(
        self,
        *args: str,
        check: bool = True,
        capture: bool = True,
        quiet: bool = False,
        merge: bool = False,
        to_stderr: bool = False,
        stdin: str | Path | None = None,
        stdout_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """`capture`: return stdout (else it goes to ours, or to stderr with
        `to_stderr`, or into `stdout_path`); `merge`: stderr joins stdout (2>&1);
        `quiet`: stderr is dropped (2>/dev/null). `stdin`: a file, or text."""
        sys.stdout.flush()
        sys.stderr.flush()
        stdout: int | object
        stderr: int | None = subprocess.STDOUT if merge else None
        if quiet and not merge:
            stderr = subprocess.DEVNULL
        out_file = open(stdout_path, "wb") if stdout_path else None  # noqa: SIM115
        in_file = open(stdin, "rb") if isinstance(stdin, Path) else None  # noqa: SIM115
        try:
            if out_file:
                stdout = out_file
            elif capture:
                stdout = subprocess.PIPE
            else:
                stdout = sys.stderr if to_stderr else None
            completed = subprocess.run(  # noqa: S603
                args,
                stdin=in_file,
                input=stdin.encode() if isinstance(stdin, str) else None,
                stdout=stdout,
                stderr=stderr,
                env={**self.environ, **(env or {})},
                check=False,
            )
        except FileNotFoundError:
            # As the shell said it, with its status.
            print(f"{args[0]}: command not found", file=sys.stderr, flush=True)
            completed = subprocess.CompletedProcess(args, NOT_FOUND, b"")
        finally:
            for file in (out_file, in_file):
                if file:
                    file.close()
        output = completed.stdout.decode(errors="replace") if capture and not out_file else ""
        if check and completed.returncode != 0:
            raise CommandFailed(args, completed.returncode)
        return Result(completed.returncode, output)

    def filtered(self, *args: str, drop_prefix: str) -> int:
        """Run with stdout and stderr on our stdout, less the lines starting with
        `drop_prefix` (`2>&1 | grep -v '^prefix'`); its exit status."""
        sys.stdout.flush()
        try:
            process = subprocess.Popen(  # noqa: S603
                args,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(self.environ),
                text=True,
                errors="replace",
            )
        except FileNotFoundError:
            print(f"{args[0]}: command not found", file=sys.stderr, flush=True)
            return NOT_FOUND
        with process:
            assert process.stdout is not None
            for line in process.stdout:
                if not line.startswith(drop_prefix):
                    sys.stdout.write(line)
                    sys.stdout.flush()
        return process.returncode

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.environ.get("PATH"))

    def clock(self) -> float:
        """Seconds, for durations and deadlines."""
        return time.monotonic()

    def now(self) -> int:
        """Unix time in whole seconds (what `docker logs --since` takes)."""
        return int(time.time())

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def token(self) -> int:
        """A random number, like bash's $RANDOM."""
        return random.randrange(32768)  # noqa: S311
