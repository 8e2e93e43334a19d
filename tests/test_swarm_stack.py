"""scripts/swarm_stack.py: the compose configuration as a swarm stack file."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.config import GROUPS
from app.settings.declaration import declared as declared_settings
from scripts.swarm_stack import SECRET_SETTINGS, StackFile

REPO = Path(__file__).resolve().parents[1]


def test_every_secret_setting_becomes_a_docker_secret() -> None:
    """The settings typed as secrets (SecretStr) in every group, and the postgres
    image's and the Postgres exporter's names for the database password: no more,
    no fewer."""
    declared = {
        setting.name
        for group in GROUPS
        for setting in declared_settings(group, group.TITLE)
        if setting.secret
    }
    assert {"SECRET_KEY", "POSTGRES_PW", "SMTP_PASSWORD"} <= declared
    assert set(SECRET_SETTINGS) == declared | {"POSTGRES_PASSWORD", "DATA_SOURCE_PASS"}


def config(tmp_path: Path) -> dict[str, Any]:
    dynamic = tmp_path / "dynamic"
    dynamic.mkdir()
    (dynamic / "middlewares.yml").write_text("http: {}\n")
    (dynamic / "server.key").write_text("PRIVATE\n")
    return {
        "name": "fastapi-stack",
        "services": {
            "traefik": {
                "image": "traefik:v3",
                "command": [
                    "--providers.docker=true",
                    "--providers.docker.network=proxy",
                    "--providers.docker.constraints=Label(`com.docker.compose.project`,`x`)",
                    "--providers.file.directory=/etc/traefik/dynamic",
                ],
                "volumes": [
                    {"type": "bind", "source": "/var/run/docker.sock", "target": "/s.sock"},
                    {"type": "bind", "source": str(dynamic), "target": "/etc/traefik/dynamic"},
                    {"type": "bind", "source": str(tmp_path / "absent"), "target": "/certs"},
                ],
                "security_opt": ["no-new-privileges:true"],
                "labels": {"traefik.enable": "false"},
            },
            "app": {
                "image": "app:1",
                "build": {"context": "."},
                "depends_on": {"db": {"condition": "service_healthy"}},
                "restart": "unless-stopped",
                "entrypoint": None,
                "tmpfs": ["/scratch"],
                "environment": {
                    "SECRET_KEY": "k$$ey`b{5",
                    "SECRET_KEY_PREVIOUS": "",
                    "DOMAIN": "example.com",
                },
                "labels": {
                    "traefik.enable": "true",
                    "traefik.docker.network": "proxy",
                    "com.example.other": "kept",
                },
                "deploy": {"resources": {"limits": {"cpus": 1.5, "memory": 536870912}}},
            },
            "postgres-exporter": {
                "image": "postgres-exporter:1",
                "environment": {"DATA_SOURCE_USER": "app", "DATA_SOURCE_PASS": "pw"},
            },
        },
        "networks": {"proxy": {"name": "proxy", "driver": "overlay"}},
        "volumes": {"pgdata": {}},
    }


def test_the_stack_file(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    stack = StackFile("prod", files).render(config(tmp_path))
    app, traefik = stack["services"]["app"], stack["services"]["traefik"]

    # Compose-only keys and nulls are gone; tmpfs is a mount; resources are strings.
    assert not {"build", "depends_on", "restart", "entrypoint", "tmpfs"} & app.keys()
    assert {"type": "tmpfs", "target": "/scratch"} in app["volumes"]
    assert app["deploy"]["resources"]["limits"] == {"cpus": "1.5", "memory": "536870912"}
    assert "security_opt" not in traefik

    # A secret leaves the environment for a file named by its content; an empty one
    # is left unset. `$$` (compose's escape) is one `$` in the secret.
    assert "SECRET_KEY" not in app["environment"]
    assert "SECRET_KEY_PREVIOUS" not in app["environment"]
    assert app["environment"]["SECRET_KEY_FILE"] == "/run/secrets/SECRET_KEY"
    assert app["secrets"] == [{"source": "secret_key", "target": "SECRET_KEY"}]
    secret = stack["secrets"]["secret_key"]
    assert Path(secret["file"]).read_text() == "k$ey`b{5"
    assert Path(secret["file"]).stat().st_mode & 0o777 == 0o600
    assert secret["name"].startswith("prod_secret_key_")
    # The exporter reads the database password from a file too (DATA_SOURCE_PASS_FILE).
    exporter = stack["services"]["postgres-exporter"]["environment"]
    assert exporter == {
        "DATA_SOURCE_USER": "app",
        "DATA_SOURCE_PASS_FILE": "/run/secrets/DATA_SOURCE_PASS",
    }

    # Routing labels move to the service, for the swarm provider.
    assert app["labels"] == {"com.example.other": "kept"}
    assert app["deploy"]["labels"] == {"traefik.enable": "true", "traefik.swarm.network": "proxy"}

    # Traefik: the swarm provider, constrained to this stack; project files as
    # configs, private keys never shipped; the socket stays a bind mount.
    assert traefik["command"] == [
        "--providers.swarm=true",
        "--providers.swarm.network=proxy",
        "--providers.swarm.constraints=Label(`com.docker.stack.namespace`,`prod`)",
        "--providers.file.directory=/etc/traefik/dynamic",
        "--providers.swarm.refreshSeconds=2",
    ]
    assert traefik["configs"] == [
        {"source": "traefik_middlewares_yml", "target": "/etc/traefik/dynamic/middlewares.yml"}
    ]
    assert [v["target"] for v in traefik["volumes"]] == ["/s.sock"]
    assert not any("server.key" in c["file"] for c in stack["configs"].values())
    assert stack["version"] == "3.9"
    assert "name" not in stack


def test_node_runtime_binds_stay_whatever_the_rendering_machine_runs(tmp_path: Path) -> None:
    """The stack file is for the nodes: the engine's socket stays a bind mount even
    where the machine rendering it has no engine (a fresh CI machine, an empty /run)."""
    files = tmp_path / "files"
    files.mkdir()
    data = config(tmp_path)
    absent = "/run/fastapi-stack-test-absent/docker.sock"
    assert not Path(absent).exists()
    data["services"]["traefik"]["volumes"][0]["source"] = absent
    traefik = StackFile("prod", files).render(data)["services"]["traefik"]
    assert {"type": "bind", "source": absent, "target": "/s.sock"} in traefik["volumes"]


def test_a_changed_secret_is_a_new_secret(tmp_path: Path) -> None:
    names = []
    for value in ("one", "two"):
        files = tmp_path / value
        files.mkdir()
        data = config(tmp_path / value)
        data["services"]["app"]["environment"]["SECRET_KEY"] = value
        names.append(StackFile("prod", files).render(data)["secrets"]["secret_key"]["name"])
    assert names[0] != names[1]


def test_the_command_line_reads_stdin_and_reports_what_it_dropped(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "scripts.swarm_stack", "--stack", "prod", "--files-dir", str(files)],
        input=json.dumps(config(tmp_path)),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert set(json.loads(result.stdout)["services"]) == {"traefik", "app", "postgres-exporter"}
    assert "traefik: swarm services have no security_opt" in result.stderr
    assert "private key" in result.stderr
    assert "does not exist; not mounted" in result.stderr
