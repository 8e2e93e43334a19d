"""prometheus/: the configuration is valid, every alert rule passes its unit tests
(tests/observability/alerts_test.yml, `promtool test rules`), each alert has a
case where it fires and one where it stays quiet, and docs/operations.md says
what each means. promtool comes from `make install` (Debian's package)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "prometheus" / "alerts.yml"
CONFIG = REPO / "prometheus" / "prometheus.yml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yml")


@pytest.fixture(scope="module")
def promtool() -> str:
    installed = REPO / ".local" / "tools" / "promtool"
    path = str(installed) if installed.exists() else shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: `make install` unpacks it into .local/tools")
    return path


def run_promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_configuration_and_its_rules_are_valid(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", str(CONFIG), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_every_rule_passes_its_unit_tests(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_catch_a_wrong_threshold(promtool: str, tmp_path: Path) -> None:
    """The same unit tests against rules whose error-rate threshold is ten times too
    high: promtool must fail them (the tests hold the thresholds, not only the syntax)."""
    # alerts_test.yml names ../../prometheus/alerts.yml: the same layout below tmp_path.
    (tmp_path / "prometheus").mkdir()
    wrong = RULES.read_text().replace("> 0.05", "> 0.5")
    assert wrong != RULES.read_text()
    (tmp_path / "prometheus" / "alerts.yml").write_text(wrong)
    tests = tmp_path / "tests" / "observability"
    tests.mkdir(parents=True)
    shutil.copy(UNIT_TESTS, tests)
    result = run_promtool(promtool, "test", "rules", UNIT_TESTS.name, cwd=tests)
    assert result.returncode != 0
    assert "alertname: HighServerErrorRate" in result.stdout + result.stderr


def test_each_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "alerts never seen firing in alerts_test.yml"
    assert names - quiet == set(), "alerts never seen staying quiet in alerts_test.yml"


def test_each_alert_is_explained_in_the_operations_guide() -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    missing = [name for name in alert_names() if f"`{name}`" not in guide]
    assert missing == []


def test_every_target_is_scraped_inside_the_stack_never_through_traefik() -> None:
    """The app's replicas one by one (DNS service discovery of the service name, not
    the load balancer), Traefik's metrics entrypoint, the Postgres exporter: by
    their names on the stack's networks. Nothing goes to the public domain."""
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"app", "traefik", "postgres", "prometheus"}
    app = jobs["app"]["dns_sd_configs"]
    assert app == [{"names": ["app"], "type": "A", "port": 9100, "refresh_interval": "15s"}]
    compose = (REPO / "compose.yaml").read_text()
    assert "--entrypoints.metrics.address=:8082" in compose
    assert jobs["traefik"]["static_configs"] == [{"targets": ["traefik:8082"]}]
    assert jobs["postgres"]["static_configs"] == [{"targets": ["postgres-exporter:9187"]}]
    # Neither metrics port is published: only Traefik's 80 and 443 are.
    published = re.findall(r'^\s+- "\$\{BIND_ADDRESS[^"]*:(\d+)"$', compose, re.MULTILINE)
    assert published == ["80", "443"]
