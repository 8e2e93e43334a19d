"""What a gunicorn master and its workers cost the host, from /proc/PID/smaps_rollup.

Not RSS: it counts every page a process maps, so the pages the workers share with
the master (the preloaded app) are counted once per process. PSS splits each
shared page among its sharers, so the PSS of the master and its workers add up to
the memory they hold together. USS (private pages, Private_Clean + Private_Dirty)
is what one more worker adds: a new worker maps the pages shared so far (they
cost nothing more, only split once more) plus its own; stopping one frees its USS.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

KIB_PER_MB = 1024


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    rss_mb: float
    pss_mb: float
    uss_mb: float

    def as_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "rss_mb": round(self.rss_mb, 1),
            "pss_mb": round(self.pss_mb, 1),
            "uss_mb": round(self.uss_mb, 1),
        }


@dataclass(frozen=True)
class ServerMemory:
    """A gunicorn master and its workers."""

    master: ProcessMemory
    workers: list[ProcessMemory]

    @property
    def total_pss_mb(self) -> float:
        return self.master.pss_mb + sum(worker.pss_mb for worker in self.workers)

    @property
    def largest_worker_uss_mb(self) -> float:
        return max((worker.uss_mb for worker in self.workers), default=0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "master": self.master.as_json(),
            "workers": [worker.as_json() for worker in self.workers],
            "total_pss_mb": round(self.total_pss_mb, 1),
        }


def smaps_rollup_kib(pid: int, proc: Path = Path("/proc")) -> dict[str, int]:
    """The rollup's fields (Rss, Pss, Private_Clean, ...), in KiB."""
    fields: dict[str, int] = {}
    for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
        name, separator, value = line.partition(":")
        words = value.split()
        if separator and len(words) == 2 and words[1] == "kB":
            fields[name] = int(words[0])
    return fields


def process_memory(pid: int, proc: Path = Path("/proc")) -> ProcessMemory:
    fields = smaps_rollup_kib(pid, proc)
    return ProcessMemory(
        pid=pid,
        rss_mb=fields["Rss"] / KIB_PER_MB,
        pss_mb=fields["Pss"] / KIB_PER_MB,
        uss_mb=(fields["Private_Clean"] + fields["Private_Dirty"]) / KIB_PER_MB,
    )


def server_memory(master: int, workers: list[int]) -> ServerMemory:
    """Read all of them at once, one after the other: PSS shifts as processes come
    and go, so a figure read long after another would not add up with it."""
    return ServerMemory(
        master=process_memory(master),
        workers=sorted((process_memory(pid) for pid in workers), key=lambda worker: worker.pid),
    )
