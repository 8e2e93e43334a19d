"""The stack on Docker Swarm, from the same compose.yaml (docs/deploy.md, "Docker Swarm"),
run by scripts/swarm.sh (the Makefile's entry):

    python3 -m scripts.swarm deploy   build the release, render the stack file, deploy it
                                      (a rolling update when the stack runs), verify HTTPS
    python3 -m scripts.swarm down     remove the stack (its volumes stay)
    python3 -m scripts.swarm ps       the stack's services and their tasks

Settings come from ENV_FILE (default .env), as with compose. Also read:
  STACK_NAME         the stack (default: the compose project's name)
  SWARM_COMPOSE_FILE the files merged (default compose.yaml:compose.swarm.yaml)
  APP_REPLICAS       app replicas (default 3), POSTGRES_MAX_CONNECTIONS (200)
and scripts/stack.py's health check options (HEALTH_CHECK_*, WAIT_TIMEOUT).
Standard library only: it runs on the deploy host.
"""

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts import stack
from scripts.runner import Result, Runner
from scripts.stack import (
    Console,
    Refusal,
    Settings,
    Stack,
    app_image_of_config,
    connections_per_container,
    image_repository,
    lines,
    load_env,
    pooled_rolling_update_refusal,
    pooler_in_use,
    public_url,
    rolling_update_refusal,
    short_id,
    uses_external_database,
)
from scripts.swarm_stack import StackFile

USAGE = "usage: scripts/swarm.sh deploy|ps|down"
DEFAULT_COMPOSE_FILES = "compose.yaml:compose.swarm.yaml"
DB_NODE_LABEL = "fastapi-stack.db"
NO_LOCAL_CERTIFICATE = (
    "on a swarm the certificate comes from the ACME CA: set CERT_RESOLVER=letsencrypt and a "
    "public DOMAIN (for a local trial, make up)"
)


def manager_refusal(state: str) -> str | None:
    """Where a stack file is deployed from: an active swarm's manager.
    `state`: docker info's `{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}`."""
    if state == "active true":
        return None
    if state == "active false":
        return "this node is a swarm worker: deploy from a manager (docker node ls there)"
    return (
        "this engine is not in a swarm: docker swarm init --advertise-addr <this node's "
        "address> (docs/deploy.md, Docker Swarm)"
    )


def db_node_plan(labelled: int, nodes: int) -> str:
    """Postgres keeps its volume on one node: the one labelled for it. "ready" when
    one is, "label" this node when it is a one-node swarm's only one, else "refuse":
    with more nodes, the operator chooses."""
    if labelled:
        return "ready"
    return "label" if nodes == 1 else "refuse"


def takeover_refusal(serving: str, release: str, update_state: str) -> str | None:
    """Whether the new release serves after `docker stack deploy`: swarm's record of
    the app's last update is empty on a first deploy, else `completed`, or
    `rollback_completed` when the new tasks never turned healthy."""
    if (
        serving == release
        and not update_state.startswith("rollback")
        and not update_state.startswith("paused")
    ):
        return None
    return f"the new release did not take over ({update_state or 'no update'}); {serving} serves on"


def migrations_refusal(state: str) -> str | None:
    """The migration job of this deploy: its last task's state."""
    if state.startswith("Complete"):
        return None
    return (
        f"the migration job did not complete ({state}): the new release is not ready, "
        "the previous one serves on"
    )


def unused(names: Sequence[str], stack_file: str) -> list[str]:
    """Secrets and configs are immutable and named by their content: the ones the
    stack file no longer names."""
    return [name for name in names if f'"{name}"' not in stack_file]


def without_digest(image: str) -> str:
    """name:tag@sha256:... -> name:tag"""
    return image.rsplit("@", 1)[0]


class Swarm(Stack):
    def __init__(self, runner: Runner, console: Console, settings: Settings) -> None:
        super().__init__(runner, console, settings)
        self.compose_files = settings.get("SWARM_COMPOSE_FILE", DEFAULT_COMPOSE_FILES)
        self.name = settings.get("STACK_NAME")

    def compose(self, *args: str, **options: Any) -> Result:
        """Compose names the stack's volumes and networks after the project: the stack's."""
        env = {"COMPOSE_FILE": self.compose_files} | options.pop("env", {})
        if self.name:
            env["COMPOSE_PROJECT_NAME"] = self.name
        return super().compose(*args, env=env, **options)

    @property
    def external_database(self) -> bool:
        return uses_external_database(self.compose_files)

    def stack_name(self) -> str:
        if not self.name:
            config = json.loads(self.compose("config", "--format", "json").stdout)
            self.name = str(config["name"])
        return self.name

    def service(self, name: str) -> str:
        return f"{self.stack_name()}_{name}"

    def show_logs(self, *services: str) -> None:
        for service in services:
            self.docker(
                *("service", "logs", "--tail", "30", "--no-task-ids", self.service(service)),
                check=False,
                capture=False,
                merge=True,
                to_stderr=True,
            )

    def require_manager(self) -> None:
        state = self.docker(
            "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"
        ).stdout.strip()
        refusal = manager_refusal(state)
        if refusal:
            raise Refusal(refusal)

    def node_count(self, *filters: str) -> int:
        return len(self.docker("node", "ls", *filters, "--quiet").stdout.splitlines())

    def require_db_node(self) -> None:
        label = f"{DB_NODE_LABEL}=true"
        plan = db_node_plan(self.node_count("--filter", f"node.label={label}"), self.node_count())
        if plan == "label":
            self.log(f"one-node swarm: labelling this node for the database ({label})")
            (node,) = lines(self.docker("node", "ls", "--quiet").stdout)
            self.docker("node", "update", "--label-add", label, node)
        elif plan == "refuse":
            raise Refusal(
                f"no node is labelled for the database: docker node update --label-add "
                f"{label} <node> (its volume lives there)"
            )

    def check_connection_budget(self) -> None:
        replicas = self.settings.number("APP_REPLICAS")
        per_container = connections_per_container(self.settings)
        max_connections = self.settings.number("POSTGRES_MAX_CONNECTIONS")
        if pooler_in_use(self.settings):
            refusal = pooled_rolling_update_refusal(
                replicas,
                per_container,
                self.settings.number("PGBOUNCER_MAX_CLIENT_CONN"),
                self.settings.number("PGBOUNCER_POOL_SIZE"),
                max_connections,
            )
        else:
            refusal = rolling_update_refusal(replicas, per_container, max_connections)
        if refusal:
            raise Refusal(refusal)

    def app_image(self) -> str:
        return app_image_of_config(
            json.loads(self.compose("config", "--format", "json", "app").stdout)
        )

    def build_release(self) -> str:
        """Builds the app's image and names it by its id, so that each release is a
        new image reference (what makes swarm roll the service). A swarm of several
        nodes pulls it from a registry: APP_IMAGE must name one, and it is pushed."""
        image = self.app_image()
        self.log(f"building {image} (revision {self.settings.environ.get('APP_REVISION', '')})")
        self.explain_builder()
        self.compose("build", "app", capture=False)
        release = self.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        release_image = f"{image_repository(image)}:{short_id(release)}"
        self.docker("tag", release, release_image, capture=False)
        if self.node_count() > 1:
            self.log(f"pushing {release_image} (the other nodes pull it)")
            if not self.docker("push", release_image, check=False, capture=False).ok:
                raise Refusal(
                    f"could not push {release_image}: on a swarm of several nodes, APP_IMAGE "
                    "must name a registry you are logged in to (docs/deploy.md, Docker Swarm)"
                )
        return release_image

    def build_pooler(self) -> None:
        """With the profile `pgbouncer`, its image is built here from pgbouncer/, as
        compose builds it; a swarm of several nodes pulls it: PGBOUNCER_IMAGE must
        name a registry, and it is pushed."""
        if not pooler_in_use(self.settings):
            return
        config = json.loads(self.compose("config", "--format", "json", "pgbouncer").stdout)
        image = config["services"]["pgbouncer"]["image"]
        self.log(f"building {image}")
        self.compose("build", "pgbouncer", capture=False)
        if self.node_count() > 1:
            self.log(f"pushing {image} (the other nodes pull it)")
            if not self.docker("push", image, check=False, capture=False).ok:
                raise Refusal(
                    f"could not push {image}: on a swarm of several nodes, PGBOUNCER_IMAGE "
                    "must name a registry you are logged in to (docs/deploy.md, Docker Swarm)"
                )

    def render_stack_file(self, release_image: str, folder: Path) -> Path:
        config = json.loads(
            self.compose("config", "--format", "json", env={"APP_IMAGE": release_image}).stdout
        )
        stack_file = StackFile(self.stack_name(), folder)
        path = folder / "stack.json"
        path.write_text(json.dumps(stack_file.render(config), indent=2) + "\n")
        for note in stack_file.notes:
            print(f"[swarm] {note}", file=sys.stderr, flush=True)
        return path

    def traefik_address(self) -> str | None:
        """The address of the node Traefik runs on, for the HTTPS check: its published
        port there, or (published nowhere, as in the test suite) its task's address on
        this node's docker_gwbridge."""
        traefik = self.service("traefik")
        tasks = self.docker(
            "service", "ps", "--filter", "desired-state=running", "--quiet", traefik, check=False
        )
        task = (lines(tasks.stdout) or [""])[0]
        if not task:
            return None
        ports = "{{range .Endpoint.Ports}}{{.PublishedPort}}{{end}}"
        if self.docker(
            "service", "inspect", "--format", ports, traefik, check=False
        ).stdout.strip():
            node = self.docker(
                "inspect", "--format", "{{.NodeID}}", task, check=False
            ).stdout.strip()
            this = self.docker("info", "--format", "{{.Swarm.NodeID}}", check=False).stdout.strip()
            if node == this:
                return "127.0.0.1"
            found = self.docker(
                "node", "inspect", "--format", "{{.Status.Addr}}", node, check=False
            )
            return found.stdout.strip() if found.ok else None
        container = self.docker(
            "inspect", "--format", "{{.Status.ContainerStatus.ContainerID}}", task, check=False
        ).stdout.strip()
        template = f'{{{{with index .Containers "{container}"}}}}{{{{.IPv4Address}}}}{{{{end}}}}'
        address = self.docker(
            "network", "inspect", "docker_gwbridge", "--format", template, check=False, quiet=True
        ).stdout.strip()
        return address.split("/")[0] if address else None

    def update_state(self) -> str:
        template = "{{if .UpdateStatus}}{{.UpdateStatus.State}}: {{.UpdateStatus.Message}}{{end}}"
        return self.docker(
            "service", "inspect", "--format", template, self.service("app")
        ).stdout.strip()

    def check_migrations(self) -> None:
        states = self.docker(
            "service", "ps", "--format", "{{.CurrentState}}", self.service("migrate")
        ).stdout
        refusal = migrations_refusal((states.splitlines() or [""])[0])
        if refusal:
            self.show_logs("migrate")
            raise Refusal(refusal)

    def prune_unused(self, stack_file: Path) -> None:
        text = stack_file.read_text()
        for kind in ("secret", "config"):
            names = self.docker(
                *(kind, "ls", "--filter", f"label=com.docker.stack.namespace={self.stack_name()}"),
                *("--format", "{{.Name}}"),
                check=False,
            ).stdout
            for name in unused(lines(names), text):
                # One still in use cannot be removed, and stays.
                self.docker(kind, "rm", name, check=False, merge=True)

    def deploy(self) -> None:
        self.check_settings()
        if not self.settings["CERT_RESOLVER"]:
            raise Refusal(NO_LOCAL_CERTIFICATE)
        self.require_manager()
        self.stack_name()
        self.check_connection_budget()
        if not self.external_database:  # a managed database lives on no node of ours
            self.require_db_node()
        started = self.runner.clock()
        release_image = self.build_release()
        self.build_pooler()
        with tempfile.TemporaryDirectory() as folder:
            stack_file = self.render_stack_file(release_image, Path(folder))
            self.log(
                f"deploying {release_image} as stack {self.stack_name()} "
                f"({self.settings['APP_REPLICAS']} app replicas; a rolling update if it runs)"
            )
            # --detach=false: returns once every service has converged (or rolled back).
            status = self.runner.filtered(
                *("docker", "stack", "deploy", "--detach=false", "--prune"),
                *("--compose-file", str(stack_file), self.stack_name()),
                drop_prefix="verify: Waiting",
            )
            serving = without_digest(
                self.docker(
                    "service",
                    "inspect",
                    "--format",
                    "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                    self.service("app"),
                ).stdout.strip()
            )
            refusal = takeover_refusal(serving, release_image, self.update_state())
            if refusal:
                self.show_logs("app")
                # APP_IMAGE names what serves, as before this deploy.
                self.docker("tag", serving, self.app_image(), capture=False)
                raise Refusal(refusal)
            if status != 0:
                raise Refusal(f"docker stack deploy failed (exit {status}, see above)")
            self.check_migrations()
            if not self.settings.get("HEALTH_CHECK_ADDRESS"):
                address = self.traefik_address() or "127.0.0.1"
                self.settings.environ["HEALTH_CHECK_ADDRESS"] = address
            self.wait_for_https()
            self.prune_unused(stack_file)
        self.docker("stack", "services", self.stack_name(), capture=False)
        elapsed = int(self.runner.clock() - started)
        self.log(f"deployed {release_image} in {elapsed}s: {public_url(self.settings)}/docs")

    def ps(self) -> None:
        self.docker("stack", "services", self.stack_name(), capture=False)
        self.docker(
            "stack", "ps", "--filter", "desired-state=running", self.stack_name(), capture=False
        )

    def down(self) -> None:
        self.docker("stack", "rm", self.stack_name(), capture=False)
        self.log(f"removed stack {self.stack_name()}; its volumes stay (docker volume ls)")


def run_command(args: Sequence[str], runner: Runner, console: Console) -> None:
    command = args[0] if args else ""
    if command not in ("deploy", "ps", "down"):
        raise Refusal(USAGE)
    swarm = Swarm(runner, console, load_env(runner, runner.environ))
    getattr(swarm, command)()


if __name__ == "__main__":
    sys.exit(stack.main(sys.argv[1:], run_command, prefix="swarm"))
