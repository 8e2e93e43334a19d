"""scripts/deploy.py (`make deploy`, CI's deploy job): what it refuses before it
hands over to scripts/stack.py's deploy, on a fake docker (tests/scripts/fake.py)."""

from pathlib import Path

import pytest

from scripts.deploy import REQUIRED, missing_refusal, run_command
from scripts.runner import Result
from scripts.stack import main
from scripts.swarm_stack import SECRET_SETTINGS
from tests.scripts.fake import FakeRunner

SETTINGS = {
    "DOMAIN": "example.com",
    "SECRET_KEY": "k",
    "POSTGRES_USER": "app",
    "POSTGRES_PW": "`b{5",
    "POSTGRES_DB": "app",
}


def test_the_required_settings() -> None:
    assert missing_refusal(SETTINGS, "x.env") is None
    assert (
        missing_refusal({**SETTINGS, "SECRET_KEY": ""}, "x.env") == "SECRET_KEY is empty in x.env"
    )
    assert {"SECRET_KEY", "POSTGRES_PW"} <= set(SECRET_SETTINGS) & set(REQUIRED)


def deploy(runner: FakeRunner) -> int:
    return main([], run_command, prefix="deploy", runner=runner)


def env_file(tmp_path: Path, **values: str) -> str:
    path = tmp_path / "deploy.env"
    path.write_text("".join(f"{name}='{value}'\n" for name, value in values.items()))
    return str(path)


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "none.env")
    assert deploy(FakeRunner([], {"ENV_FILE": missing})) == 1
    assert capsys.readouterr().err == (
        f"[deploy] ERROR: {missing} not found: write it first (CI writes it from its secrets)\n"
    )
    written = env_file(tmp_path, **SETTINGS)
    assert deploy(FakeRunner([], {"ENV_FILE": written}, tools=())) == 1
    assert capsys.readouterr().err == "[deploy] ERROR: curl is needed for the health check\n"
    empty = env_file(tmp_path, **{**SETTINGS, "POSTGRES_DB": ""})
    runner = FakeRunner([], {"ENV_FILE": empty})
    assert deploy(runner) == 1
    assert capsys.readouterr().err == f"[deploy] ERROR: POSTGRES_DB is empty in {empty}\n"
    assert runner.calls == []


def test_the_deploy_hands_over_to_the_stack_and_keeps_its_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = env_file(tmp_path, **SETTINGS, ENVIRONMENT="production", CERT_RESOLVER="acme")
    runner = FakeRunner([("ps --status running", "c1\n")], {"ENV_FILE": written})
    assert deploy(runner) == 1
    output = capsys.readouterr()
    assert output.out == "[deploy] validating the compose configuration\n"
    assert output.err.endswith(
        "[stack] ERROR: CERT_RESOLVER must be '' (local certificate) or 'letsencrypt', not 'acme'\n"
    )
    assert runner.calls[0] == f"docker compose --env-file {written} config --quiet"
    runner = FakeRunner([("config --quiet", Result(15))], {"ENV_FILE": written})
    assert deploy(runner) == 15  # compose said why
