"""Figures in, verdicts out: medians, the targets' ratios, the table, JSON and chart."""

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.memory import ServerMemory
from bench.wrk import WrkResult

APP = "app"
BASELINE = "baseline"
# The same app with METRICS_PORT=0 (S1 and S2 only): what measuring costs the app.
METRICS_OFF = "nometrics"
STORM = "logins"  # S5: the login load running beside S1
TRAEFIK = "traefik"
DIRECT = "direct"

SCENARIOS = {
    "S0": "constant JSON (reference)",
    "S1": "item list, page of 20",
    "S2": "GET /api/users/me",
    "S3": "POST /api/token/refresh",
    "S4": "login, bcrypt cost 12",
    "S5": "S1 during a login storm",
    "S6": "S1 through Traefik (HTTPS)",
}
# The chart's axis labels: short enough to sit side by side.
SHORT_LABELS = {
    "S0": "constant\nJSON",
    "S1": "item list\n(page of 20)",
    "S2": "/users/me",
    "S3": "token\nrefresh",
    "S4": "login\n(cost 12)",
    "S5": "item list +\nlogin storm",
    "S6": "item list\nvia Traefik",
}
# What each system answers in S0: the app's cheapest route, the baseline's constant.
S0_PATHS = {APP: "/api/health", BASELINE: "/api/constant"}


@dataclass(frozen=True)
class Run:
    scenario: str
    system: str
    round: int
    result: WrkResult


@dataclass(frozen=True)
class Summary:
    """The medians of one scenario's runs on one system; errors added up."""

    scenario: str
    system: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    runs: list[WrkResult]


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    measured: float
    bound: float
    # True: the measured value must be >= bound; False: <= bound.
    at_least: bool
    unit: str = "x"
    extra_condition: str = ""
    extra_met: bool = True
    note: str = ""

    @property
    def met(self) -> bool:
        within = self.measured >= self.bound if self.at_least else self.measured <= self.bound
        return within and self.extra_met

    @property
    def score(self) -> float:
        """How far from the bound, 1.0 on it, above 1 on the good side."""
        if self.at_least:
            return self.measured / self.bound
        return self.bound / self.measured if self.measured else float("inf")

    def requirement(self) -> str:
        sign = ">=" if self.at_least else "<="
        text = f"{sign} {self.bound:g}{self.unit}"
        return f"{text}, {self.extra_condition}" if self.extra_condition else text


@dataclass
class Report:
    """Everything one `make bench` (or `make bench-stack`) run measured."""

    title: str
    machine: dict[str, Any]
    protocol: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    # Each system's master and workers after the run (make bench).
    memory: dict[str, ServerMemory] = field(default_factory=dict)
    # Workers' RSS only, where smaps_rollup cannot be read (make bench-stack).
    memory_mb: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def paired_ratio(self, scenario: str, system: str, other: str) -> float:
        """The median, over rounds, of `system`'s req/s ÷ `other`'s in the same
        round. Each round runs the two back to back, so a slow spell of the machine
        (another job, a frequency change) lowers both of a pair and cancels out,
        where a ratio of the two medians would compare runs minutes apart."""
        by_round: dict[tuple[str, int], float] = {
            (run.system, run.round): run.result.rps
            for run in self.runs
            if run.scenario == scenario and run.system in (system, other)
        }
        ratios = [
            ratio(rps, by_round[(other, round_)])
            for (owner, round_), rps in by_round.items()
            if owner == system and (other, round_) in by_round
        ]
        return statistics.median(ratios) if ratios else 0.0

    def summary(self, scenario: str, system: str) -> Summary | None:
        results = [
            run.result for run in self.runs if run.scenario == scenario and run.system == system
        ]
        if not results:
            return None
        return Summary(
            scenario=scenario,
            system=system,
            rps=statistics.median(result.rps for result in results),
            p50_ms=statistics.median(result.p50_ms for result in results),
            p99_ms=statistics.median(result.p99_ms for result in results),
            errors=sum(result.errors for result in results),
            requests=sum(result.requests for result in results),
            runs=results,
        )

    def summaries(self) -> list[Summary]:
        pairs = dict.fromkeys((run.scenario, run.system) for run in self.runs)
        found = [self.summary(scenario, system) for scenario, system in sorted(pairs)]
        return [summary for summary in found if summary is not None]

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "machine": self.machine,
            "protocol": self.protocol,
            "summaries": [
                {
                    "scenario": summary.scenario,
                    "label": SCENARIOS[summary.scenario],
                    "system": summary.system,
                    "rps": round(summary.rps, 1),
                    "p50_ms": round(summary.p50_ms, 2),
                    "p99_ms": round(summary.p99_ms, 2),
                    "errors": summary.errors,
                    "requests": summary.requests,
                }
                for summary in self.summaries()
            ],
            "targets": [
                {
                    "name": target.name,
                    "what": target.what,
                    "measured": round(target.measured, 3),
                    "requirement": target.requirement(),
                    "met": target.met,
                    "note": target.note,
                }
                for target in self.targets
            ],
            "memory": {system: found.as_json() for system, found in self.memory.items()},
            "worker_rss_mb": self.memory_mb,
            "runs": [
                {
                    "scenario": run.scenario,
                    "system": run.system,
                    "round": run.round,
                    **run.result.as_json(),
                }
                for run in self.runs
            ],
            **self.extra,
            "notes": self.notes,
        }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def format_table(report: Report) -> str:
    lines = [
        report.title,
        "",
        f"{'scenario':38} {'system':9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'runs':>5}",
    ]
    previous = ""
    for summary in report.summaries():
        label = f"{summary.scenario} {SCENARIOS[summary.scenario]}"
        lines.append(
            f"{label if label != previous else '':38} {summary.system:9} {summary.rps:>9.1f} "
            f"{summary.p50_ms:>8.1f} {summary.p99_ms:>8.1f} {summary.errors:>7} "
            f"{len(summary.runs):>5}"
        )
        previous = label
    if report.memory:
        lines += [
            "",
            "memory after the run, MB (/proc/PID/smaps_rollup; USS: private pages)",
            f"{'system':9} {'master PSS':>10} {'workers PSS':>14} {'total PSS':>10} "
            f"{'workers USS':>14} {'workers RSS':>14}",
        ]
        for system, found in report.memory.items():
            pss = " + ".join(f"{worker.pss_mb:.1f}" for worker in found.workers)
            uss = ", ".join(f"{worker.uss_mb:.1f}" for worker in found.workers)
            rss = ", ".join(f"{worker.rss_mb:.1f}" for worker in found.workers)
            lines.append(
                f"{system:9} {found.master.pss_mb:>10.1f} {pss:>14} {found.total_pss_mb:>10.1f} "
                f"{uss:>14} {rss:>14}"
            )
    if report.memory_mb:
        lines.append("")
        for system, sizes in report.memory_mb.items():
            shown = ", ".join(f"{size:.1f}" for size in sizes)
            lines.append(f"worker RSS after the run, {system}: {shown} MB")
    if report.targets:
        lines += ["", f"{'target':6} {'what':58} {'measured':>9}  {'required':24} verdict"]
        for target in report.targets:
            lines.append(
                f"{target.name:6} {target.what:58} {target.measured:>8.2f}{target.unit:1}  "
                f"{target.requirement():24} {'met' if target.met else 'NOT MET'}"
            )
            if target.note:
                lines.append(f"{'':6} {target.note}")
        met = sum(target.met for target in report.targets)
        lines.append(f"\n{met} of {len(report.targets)} targets met")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")


def _systems_in(summaries: Iterable[Summary]) -> list[str]:
    order = [APP, METRICS_OFF, BASELINE, STORM, TRAEFIK, DIRECT]
    present = {summary.system for summary in summaries}
    return [system for system in order if system in present]


COLOURS = {
    APP: "#1f77b4",
    METRICS_OFF: "#aec7e8",
    BASELINE: "#ff7f0e",
    STORM: "#9467bd",
    TRAEFIK: "#2ca02c",
    DIRECT: "#1f77b4",
}


def write_chart(report: Report, path: Path) -> None:
    """Three panels: throughput per scenario and system (each run a dot), latency
    p50/p99, and each target's distance from its bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    summaries = report.summaries()
    scenarios = list(dict.fromkeys(summary.scenario for summary in summaries))
    systems = _systems_in(summaries)
    by_key = {(summary.scenario, summary.system): summary for summary in summaries}

    figure, (throughput, latency, verdicts) = plt.subplots(
        1, 3, figsize=(18, 6.5), gridspec_kw={"width_ratios": [1.25, 1.25, 1]}
    )
    figure.suptitle(report.title, fontsize=12)

    positions = range(len(scenarios))
    for position, scenario in zip(positions, scenarios, strict=True):
        # Each scenario's bars centred on its tick, whichever systems ran it.
        present = [by_key[scenario, system] for system in systems if (scenario, system) in by_key]
        width = 0.8 / len(present)
        for index, summary in enumerate(present):
            x = position + (index - (len(present) - 1) / 2) * width
            colour = COLOURS[summary.system]
            throughput.bar(x, summary.rps, width, color=colour)
            throughput.scatter(
                [x] * len(summary.runs),
                [run.rps for run in summary.runs],
                color="black",
                s=10,
                zorder=3,
            )
            throughput.annotate(
                f"{summary.rps:.0f}" if summary.rps >= 10 else f"{summary.rps:.1f}",
                (x, summary.rps),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
            latency.bar(x, summary.p99_ms, width, color=colour, alpha=0.45)
            latency.bar(x, summary.p50_ms, width, color=colour)
    throughput.set_title("Throughput (median; dots: each run)")
    latency.set_title("Latency (solid: p50, light: p99)")
    rates = [summary.rps for summary in summaries]
    latencies = [value for summary in summaries for value in (summary.p50_ms, summary.p99_ms)]
    for axes, values in ((throughput, rates), (latency, latencies)):
        axes.set_xticks(list(positions))
        axes.set_xticklabels(
            [f"{scenario}\n{SHORT_LABELS[scenario]}" for scenario in scenarios], fontsize=8
        )
        # Log only when the figures span decades (logins/s beside req/s).
        if min(values) > 0 and max(values) / min(values) > 20:
            axes.set_yscale("log")
            axes.set_title(axes.get_title() + ", log scale")
        axes.grid(axis="y", alpha=0.3)
    handles = [Rectangle((0, 0), 1, 1, color=COLOURS[system]) for system in systems]
    throughput.legend(handles, systems, fontsize=9, loc="upper right")
    throughput.set_ylabel("requests per second")
    latency.set_ylabel("milliseconds")

    if report.targets:
        names = [f"{target.name}: {target.what}" for target in report.targets]
        scores = [min(target.score, 3.0) for target in report.targets]
        colours = ["#2ca02c" if target.met else "#d62728" for target in report.targets]
        rows = range(len(report.targets))
        verdicts.barh(list(rows), scores, color=colours, height=0.6)
        verdicts.axvline(1.0, color="black", linewidth=1)
        for row, target, score in zip(rows, report.targets, scores, strict=True):
            verdicts.annotate(
                f"{target.measured:.2f}{target.unit} ({target.requirement()})",
                (score, row),
                va="center",
                fontsize=8,
                xytext=(3, 0),
                textcoords="offset points",
            )
        verdicts.set_yticks(list(rows))
        verdicts.set_yticklabels([_wrap(name, 34) for name in names], fontsize=8)
        # Top to bottom, and rows of one height whatever the number of targets.
        verdicts.set_ylim(max(len(report.targets), 6) - 0.5, -0.5)
        verdicts.set_xlim(0, 4.2)
        verdicts.set_title("Targets: measured ÷ bound (>= 1 is met)")
        verdicts.set_xlabel("green: met, red: not met")
    else:
        verdicts.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _wrap(text: str, width: int = 18) -> str:
    words: Sequence[str] = text.split()
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)
