"""`make bench`'s bookkeeping (bench/harness.py, bench/report.py), without servers:
the order of the systems in a round and the targets computed from the runs."""

import json
from pathlib import Path

import pytest

from bench.harness import S1M_MIN_RATIO, S2M_MIN_RATIO, Bench, round_order, targets
from bench.report import (
    APP,
    BASELINE,
    METRICS_OFF,
    STORM,
    Report,
    Run,
    format_table,
    write_json,
)
from bench.wrk import WrkResult


def result(rps: float, p99_ms: float = 20.0, errors: int = 0) -> WrkResult:
    return WrkResult(
        requests=int(rps * 10),
        seconds=10.0,
        errors=errors,
        error_kinds={},
        p50_ms=p99_ms / 3,
        p90_ms=p99_ms / 2,
        p99_ms=p99_ms,
        max_ms=p99_ms * 2,
        exhausted=0,
    )


def report_of(rates: dict[tuple[str, str], float]) -> Report:
    runs = [Run(scenario, system, 0, result(rps)) for (scenario, system), rps in rates.items()]
    return Report(title="test", machine={}, protocol={}, runs=runs)


RATES = {
    ("S0", APP): 10_000.0,
    ("S0", BASELINE): 30_000.0,
    ("S1", APP): 1_900.0,
    ("S1", BASELINE): 2_800.0,
    ("S1", METRICS_OFF): 1_950.0,
    ("S2", APP): 3_700.0,
    ("S2", BASELINE): 7_000.0,
    ("S2", METRICS_OFF): 4_000.0,
    ("S3", APP): 700.0,
    ("S4", APP): 9.0,
    ("S5", APP): 900.0,
    ("S5", STORM): 9.0,
}


def test_each_round_reverses_the_order_with_the_app_next_to_both_comparisons() -> None:
    for round_ in range(4):
        order = round_order(round_)
        assert sorted(order) == sorted((APP, BASELINE, METRICS_OFF))
        assert order[1] == APP
        assert order == (round_order(round_ + 1))[::-1]
    # The baseline and the app without metrics run S1 and S2; S0 is the app's and
    # the baseline's only.
    assert "S0" not in Bench.scenarios_of(METRICS_OFF)
    assert {"S1", "S2"} <= set(Bench.scenarios_of(METRICS_OFF))
    assert {"S0", "S1", "S2"} <= set(Bench.scenarios_of(BASELINE))


def test_metrics_targets_compare_the_app_with_itself_without_metrics(tmp_path: Path) -> None:
    report = report_of(RATES)
    report.targets = targets(report, [0.2])
    found = {target.name: target for target in report.targets}

    s1m, s2m = found["S1m"], found["S2m"]
    assert s1m.measured == pytest.approx(1_900 / 1_950)
    assert s1m.bound == S1M_MIN_RATIO == 0.95
    assert s1m.met
    assert s2m.measured == pytest.approx(3_700 / 4_000)
    assert s2m.bound == S2M_MIN_RATIO == 0.95
    assert not s2m.met
    # The app-vs-baseline targets still compare with the baseline.
    assert found["S1"].measured == pytest.approx(1_900 / 2_800)

    table = format_table(report)
    assert "S1m    item list req/s, metrics on ÷ off" in table
    assert "S2m    /users/me req/s, metrics on ÷ off" in table
    assert METRICS_OFF in table
    write_json(report, tmp_path / "results.json")
    written = json.loads((tmp_path / "results.json").read_text())
    by_name = {target["name"]: target for target in written["targets"]}
    assert by_name["S1m"]["requirement"] == ">= 0.95x"
    assert by_name["S2m"]["met"] is False
    assert {"scenario": "S1", "system": METRICS_OFF} in [
        {"scenario": summary["scenario"], "system": summary["system"]}
        for summary in written["summaries"]
    ]


def test_ratios_between_systems_pair_the_runs_of_each_round() -> None:
    # Round 1 ran while the machine was slow: both systems of the pair alike.
    rounds = [(1_000.0, 1_040.0), (500.0, 510.0), (990.0, 1_000.0)]
    runs = [
        Run("S1", system, round_, result(rps))
        for round_, pair in enumerate(rounds)
        for system, rps in zip((APP, METRICS_OFF), pair, strict=True)
    ]
    runs.append(Run("S1", APP, 3, result(2_000.0)))  # no partner: left out
    report = Report(title="test", machine={}, protocol={}, runs=runs)

    paired = report.paired_ratio("S1", APP, METRICS_OFF)

    assert paired == pytest.approx(sorted(app / off for app, off in rounds)[1])
    # The ratio of the medians would compare round 2's app with round 0's other.
    assert paired != pytest.approx(1_000.0 / 1_000.0)
