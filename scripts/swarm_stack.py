"""Turn the merged compose configuration into a Docker Swarm stack file.

    docker compose -f compose.yaml -f compose.swarm.yaml config --format json \
        | python3 -m scripts.swarm_stack --stack NAME --files-dir DIR > DIR/stack.json

compose.yaml stays the one description of the stack; what a swarm does
differently, and cannot be said in an overlay, is translated here:
- settings that are secrets leave the environment and become Docker secrets,
  read through NAME_FILE (the app's settings, and the official Postgres image,
  read that convention); each secret's name carries a hash of its content, so a
  changed secret is a new one and rolls the services that use it;
- bind-mounted project files (Traefik's dynamic configuration) become Docker
  configs, which every node can read (private keys are never shipped);
- Traefik's docker provider becomes its swarm provider, and the routing labels
  move from the containers to the services, where that provider reads them;
- what swarm services cannot do is dropped, and said on stderr.
Standard library only: it runs on the deploy host.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from scripts.env_example import example_settings

# Settings whose values are secrets, wherever a service's environment holds them:
# those `.env.example` marks [secret] (it is generated from the declaration), and
# the names the postgres image and the Postgres exporter give the database password.
SECRET_SETTINGS = (
    *(setting.name for setting in example_settings() if setting.secret),
    "POSTGRES_PASSWORD",
    "DATA_SOURCE_PASS",
)
# Keys swarm ignores or refuses: compose's build and start order (the deploy
# builds first; readiness gates the order), restart (deploy.restart_policy
# instead), and options swarm services lack.
COMPOSE_ONLY = ("build", "depends_on", "restart", "container_name", "pull_policy", "profiles")
UNSUPPORTED = ("security_opt", "shm_size")
# Bind mounts from here are the node's own runtime files (the Docker engine's
# socket): every node has them, so they stay bind mounts. Decided by the path, never
# by what the machine rendering the stack happens to run: the file is for the nodes.
NODE_RUNTIME_DIRS = (Path("/run"), Path("/var/run"))
# Traefik polls the swarm (it cannot watch it): seconds between two looks.
PROVIDER_REFRESH_SECONDS = 2
STACK_FILE_VERSION = "3.9"


def unescape(value: str) -> str:
    """`docker compose config` writes `$` as `$$`; a file's content is literal."""
    return value.replace("$$", "$")


def is_node_runtime_path(path: Path) -> bool:
    return any(path.is_relative_to(directory) for directory in NODE_RUNTIME_DIRS)


class StackFile:
    def __init__(self, stack: str, files_dir: Path) -> None:
        self.stack = stack
        self.files_dir = files_dir
        self.secrets: dict[str, dict[str, str]] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.notes: list[str] = []

    def _stored(self, kind: dict[str, dict[str, str]], key: str, content: bytes) -> str:
        """Write `content` for `docker stack deploy` to read; name it by its hash."""
        digest = hashlib.sha256(content).hexdigest()[:12]
        path = self.files_dir / f"{key}-{digest}"
        path.write_bytes(content)
        path.chmod(0o600)
        kind[key] = {"file": str(path), "name": f"{self.stack}_{key}_{digest}"}
        return key

    def secret(self, key: str, content: bytes) -> str:
        return self._stored(self.secrets, key, content)

    def config(self, key: str, content: bytes) -> str:
        return self._stored(self.configs, key, content)

    def service(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        spec = {key: value for key, value in spec.items() if value is not None}
        for key in COMPOSE_ONLY:
            spec.pop(key, None)
        for key in UNSUPPORTED:
            if spec.pop(key, None) is not None:
                self.notes.append(f"{name}: swarm services have no {key}; dropped")
        self._tmpfs_as_mounts(spec)
        self._stack_file_types(spec)
        self._secrets_from_environment(name, spec)
        self._files_as_configs(name, spec)
        self._labels_on_the_service(spec)
        if any(str(arg).startswith("--providers.docker") for arg in spec.get("command") or []):
            spec["command"] = self._swarm_provider(spec["command"])
        return spec

    @staticmethod
    def _stack_file_types(spec: dict[str, Any]) -> None:
        """compose writes cpus as a number and published ports as strings; the stack
        file's schema wants the other way round."""
        resources = spec.get("deploy", {}).get("resources", {})
        for section in resources.values():
            for key in ("cpus", "memory"):
                if key in section:
                    section[key] = str(section[key])
        for port in spec.get("ports", []):
            if "published" in port:
                port["published"] = int(port["published"])

    @staticmethod
    def _tmpfs_as_mounts(spec: dict[str, Any]) -> None:
        targets = spec.pop("tmpfs", None) or []
        mounts = [{"type": "tmpfs", "target": target} for target in targets]
        if mounts:
            spec["volumes"] = [*spec.get("volumes", []), *mounts]

    def _secrets_from_environment(self, service: str, spec: dict[str, Any]) -> None:
        environment: dict[str, str | None] = spec.get("environment") or {}
        for setting in SECRET_SETTINGS:
            if setting not in environment:
                continue
            value = environment.pop(setting)
            if not value:  # unset: the setting's default applies, as with compose
                continue
            key = self.secret(setting.lower(), unescape(value).encode())
            environment[f"{setting}_FILE"] = f"/run/secrets/{setting}"
            spec.setdefault("secrets", []).append({"source": key, "target": setting})

    def _files_as_configs(self, service: str, spec: dict[str, Any]) -> None:
        kept = []
        for volume in spec.get("volumes", []):
            source = Path(volume.get("source", "")) if volume.get("type") == "bind" else None
            if source is None or is_node_runtime_path(source):
                volume.pop("bind", None)  # compose's create_host_path: not a swarm option
                kept.append(volume)
                continue
            files = sorted(source.iterdir()) if source.is_dir() else [source]
            if not source.exists():
                self.notes.append(f"{service}: {source} does not exist; not mounted")
            for path in (p for p in files if p.is_file()):
                if path.suffix == ".key":
                    self.notes.append(f"{service}: private key {path} not shipped")
                    continue
                key = self.config(f"{service}_{path.name}".replace(".", "_"), path.read_bytes())
                target = volume["target"] + (f"/{path.name}" if source.is_dir() else "")
                spec.setdefault("configs", []).append({"source": key, "target": target})
        if "volumes" in spec:
            spec["volumes"] = kept

    @staticmethod
    def _labels_on_the_service(spec: dict[str, Any]) -> None:
        labels: dict[str, str] = spec.get("labels") or {}
        routing = {key: value for key, value in labels.items() if key.startswith("traefik.")}
        if not routing:
            return
        spec["labels"] = {key: value for key, value in labels.items() if key not in routing}
        deploy = spec.setdefault("deploy", {})
        deploy["labels"] = {
            key.replace("traefik.docker.", "traefik.swarm."): value
            for key, value in routing.items()
        } | (deploy.get("labels") or {})

    def _swarm_provider(self, command: list[str]) -> list[str]:
        swarm = []
        this_stack = f"Label(`com.docker.stack.namespace`,`{self.stack}`)"
        for arg in command:
            if arg.startswith("--providers.docker.constraints="):
                arg = f"--providers.docker.constraints={this_stack}"
            swarm.append(arg.replace("--providers.docker", "--providers.swarm", 1))
        return [*swarm, f"--providers.swarm.refreshSeconds={PROVIDER_REFRESH_SECONDS}"]

    def render(self, config: dict[str, Any]) -> dict[str, Any]:
        services = {name: self.service(name, spec) for name, spec in config["services"].items()}
        stack: dict[str, Any] = {
            "version": STACK_FILE_VERSION,
            "services": services,
            "networks": config.get("networks", {}),
            "volumes": config.get("volumes", {}),
        }
        if self.secrets:
            stack["secrets"] = self.secrets
        if self.configs:
            stack["configs"] = self.configs
        return stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True, help="the stack's name")
    parser.add_argument("--files-dir", required=True, type=Path, help="private dir for secrets")
    args = parser.parse_args()
    stack = StackFile(args.stack, args.files_dir)
    json.dump(stack.render(json.load(sys.stdin)), sys.stdout, indent=2)
    sys.stdout.write("\n")
    for note in stack.notes:
        print(f"[swarm] {note}", file=sys.stderr)


if __name__ == "__main__":
    main()
