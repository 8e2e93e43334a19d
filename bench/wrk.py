"""Driving load with wrk (Debian's package) and reading its figures.

Each run is bounded by wrk's own `-d`, and by a timeout on the process around it.
The Lua scripts in bench/lua/ print the figures as one JSON line (report.lua).
"""

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"
RESULT_PREFIX = "BENCH_RESULT "
# wrk's own -d bounds the run; this catches a wrk that does not stop.
OVERRUN_SECONDS = 30


@dataclass(frozen=True)
class Load:
    """How hard and how long: `wrk -t<threads> -c<connections> -d<seconds>s`."""

    threads: int
    connections: int
    seconds: float
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    error_kinds: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    # Refresh runs only: requests sent after the thread's token pool ran out.
    exhausted: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1)}


class WrkError(RuntimeError):
    """wrk failed, or printed no figures: the harness is broken, not the app slow."""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed: `apt-get install -y wrk` (`make bench` does it)")
    return found


def wrk_version() -> str:
    # `wrk -v` prints its version and usage, and exits 1.
    shown = subprocess.run(  # noqa: S603 (our own arguments, no shell)
        [wrk_binary(), "-v"], capture_output=True, text=True, check=False
    )
    return (shown.stdout or shown.stderr).splitlines()[0].strip()


def start(
    url: str, script: str, load: Load, *args: str, host: str | None = None
) -> subprocess.Popen[str]:
    """Start wrk on `url` with bench/lua/<script>.lua; `args` go to the script.
    `host`: the Host header, when `url` names an address (the TLS name stays the
    address: Traefik then serves its default certificate, which wrk does not check)."""
    command = [
        wrk_binary(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds:g}s",
        f"--timeout={load.timeout_seconds:g}s",
        "-s",
        str(LUA / f"{script}.lua"),
    ]
    if host is not None:
        command += ["-H", f"Host: {host}"]
    command.append(url)
    if args:
        command += ["--", *args]
    return subprocess.Popen(  # noqa: S603 (our own arguments, no shell)
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], load: Load) -> WrkResult:
    try:
        stdout, stderr = process.communicate(timeout=load.seconds + OVERRUN_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise WrkError(f"wrk did not stop within {load.seconds + OVERRUN_SECONDS:g} s") from None
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise WrkError(f"wrk exited {process.returncode}: {stderr.strip()}\n{stdout.strip()}")
    figures = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    kinds: dict[str, int] = figures["errors"]
    latency = {name: value / 1000 for name, value in figures["latency_us"].items()}
    return WrkResult(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        errors=sum(kinds.values()),
        error_kinds=kinds,
        p50_ms=latency["p50"],
        p90_ms=latency["p90"],
        p99_ms=latency["p99"],
        max_ms=latency["max"],
        exhausted=figures["exhausted"],
    )


def run(url: str, script: str, load: Load, *args: str, host: str | None = None) -> WrkResult:
    return finish(start(url, script, load, *args, host=host), load)
