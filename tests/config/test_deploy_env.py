"""The deploy workflow's `.env` step (scripts/deploy_env.py), run as the workflow
runs it: the whole GitHub environment in, a production `.env` out."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from scripts.env_example import example_settings

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
STEP = "Write .env from the environment's secrets and variables"
PASSWORD = "`b{5:P3kUv5LdJF."  # the user's own example
REQUIRED_SECRETS = {
    "DOMAIN": "api.example.com",
    "ACME_EMAIL": "ops@example.com",
    "SECRET_KEY": "k" * 48,
    "TOTP_ENCRYPTION_KEYS": "dG90cC1rZXktb2YtdGhlLWRlcGxveS1lbnZpcm9ubWU=",
    "POSTGRES_PW": PASSWORD,
    "FIRST_SUPERUSER_EMAIL": "admin@example.com",
    "FIRST_SUPERUSER_PASSWORD": "a-real-superuser-password",
}
MAIL = {
    "SMTP_HOST": "email-smtp.eu-west-1.amazonaws.com",
    "SMTP_USER": "AKIAEXAMPLE",
    "SMTP_PASSWORD": "smtp-$ecret{1}",
    "EMAILS_FROM": "Stack <noreply@example.com>",
}


def deploy_step() -> dict[str, Any]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["deploy"]["steps"]
    (step,) = [step for step in steps if step.get("name") == STEP]
    return dict(step)


def run_step(
    checkout: Path, secrets: dict[str, str], variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The step's own script, in a checkout, with what GitHub would put in its env
    (`toJSON(secrets)` holds github_token too)."""
    for part in (".env.example", "scripts"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, checkout / part)
    environment = {
        "PATH": "/usr/bin:/bin",
        "SECRETS_JSON": json.dumps({"github_token": "ghs_x", **secrets}),
        "VARS_JSON": json.dumps(variables or {}),
    }
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", deploy_step()["run"]],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
    )


def test_the_step_is_given_the_whole_environment_not_a_list_of_names() -> None:
    assert deploy_step()["env"] == {
        "SECRETS_JSON": "${{ toJSON(secrets) }}",
        "VARS_JSON": "${{ toJSON(vars) }}",
    }


def test_a_ci_deployed_env_configures_mail(tmp_path: Path) -> None:
    result = run_step(tmp_path, REQUIRED_SECRETS | MAIL, {"SMTP_PORT": "2587"})
    assert result.returncode == 0, result.stderr
    env_file = tmp_path / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    settings = Settings(_env_file=env_file)
    assert settings.ENVIRONMENT == "production"
    assert settings.SMTP_HOST == MAIL["SMTP_HOST"]
    assert settings.SMTP_PORT == 2587
    assert settings.SMTP_USER == MAIL["SMTP_USER"]
    assert settings.SMTP_PASSWORD.get_secret_value() == MAIL["SMTP_PASSWORD"]
    assert settings.emails_from == MAIL["EMAILS_FROM"]
    assert settings.POSTGRES_PW.get_secret_value() == PASSWORD
    assert settings.DOMAIN == "api.example.com"


def test_the_deployed_env_reads_literally_in_the_shell(tmp_path: Path) -> None:
    """compose and the deploy scripts `source` it: the user's password survives."""
    assert run_step(tmp_path, REQUIRED_SECRETS | MAIL).returncode == 0
    script = 'set -a; source .env; printf "%s\\n" "$POSTGRES_PW" "$SMTP_PASSWORD" "$CERT_RESOLVER"'
    shown = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert shown.stdout.splitlines() == [PASSWORD, MAIL["SMTP_PASSWORD"], "letsencrypt"]


def test_every_other_setting_keeps_the_examples_default(tmp_path: Path) -> None:
    assert run_step(tmp_path, REQUIRED_SECRETS).returncode == 0
    written = {s.name: s.value for s in example_settings(tmp_path / ".env")}
    example = {s.name: s.value for s in example_settings()}
    assert written.keys() == example.keys()
    changed = {name for name in example if written[name] != example[name]}
    given = {name for name, value in REQUIRED_SECRETS.items() if value != example[name]}
    assert changed == given | {"ENVIRONMENT", "CERT_RESOLVER"}


def test_a_missing_required_setting_stops_the_deploy_naming_it(tmp_path: Path) -> None:
    secrets = {k: v for k, v in REQUIRED_SECRETS.items() if k not in ("ACME_EMAIL", "POSTGRES_PW")}
    result = run_step(tmp_path, secrets)
    assert result.returncode != 0
    assert "required in production, not set: ACME_EMAIL, POSTGRES_PW" in result.stderr
    assert not (tmp_path / ".env").exists()


@pytest.mark.parametrize(
    ("secrets", "variables", "error"),
    [
        (
            {k: v for k, v in REQUIRED_SECRETS.items() if k != "SECRET_KEY"},
            {"SECRET_KEY": "k" * 48},
            "SECRET_KEY is a secret: store it as an environment secret",
        ),
        (REQUIRED_SECRETS, {"DOMAIN": "b.example.com"}, "DOMAIN is both a secret and a variable"),
        (REQUIRED_SECRETS | {"SMTP_PASSWORD": "it's"}, {}, "SMTP_PASSWORD contains a single quote"),
    ],
    ids=["secret-as-variable", "both", "single-quote"],
)
def test_an_ambiguous_or_unsafe_value_stops_the_deploy(
    tmp_path: Path, secrets: dict[str, str], variables: dict[str, str], error: str
) -> None:
    result = run_step(tmp_path, secrets, variables)
    assert result.returncode != 0
    assert error in result.stderr


def test_a_name_that_is_no_setting_is_reported_not_written(tmp_path: Path) -> None:
    result = run_step(tmp_path, REQUIRED_SECRETS | {"SMTP_HOTS": "typo"}, {"DEPLOY_ROUTE": "swarm"})
    assert result.returncode == 0
    assert "SMTP_HOTS is not a setting of the stack" in result.stderr
    assert "DEPLOY_ROUTE" not in result.stderr
    text = (tmp_path / ".env").read_text()
    assert "SMTP_HOTS" not in text
    assert "DEPLOY_ROUTE" not in text


def test_a_managed_database_is_chosen_with_compose_file(tmp_path: Path) -> None:
    """COMPOSE_FILE is compose's, no setting: a variable the deploy writes all the same."""
    files = "compose.yaml:compose.external-db.yaml"
    result = run_step(tmp_path, REQUIRED_SECRETS, {"COMPOSE_FILE": files})
    assert result.returncode == 0, result.stderr
    assert "COMPOSE_FILE is not a setting" not in result.stderr
    assert f"COMPOSE_FILE='{files}'" in (tmp_path / ".env").read_text()
