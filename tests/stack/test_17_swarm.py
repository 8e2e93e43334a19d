"""The same stack on Docker Swarm (one node here), deployed by `make deploy-swarm`.

scripts/swarm.sh renders compose.yaml + compose.swarm.yaml (+ the test overlays:
pebble as the ACME CA, no port published on the host) into a stack file and
deploys it. Checked: HTTPS with the ACME certificate through Traefik's swarm
provider, the API flow, three replicas all answering, secrets as Docker secrets
(the user's example database password among them), Prometheus (the `metrics`
profile) scraping each of the three tasks, Traefik and Postgres, and, under a continuous load
of reads and writes, a rolling update that fails no request and loses no write,
a release whose healthcheck fails rolled back with none failed, and a replica
killed with SIGKILL replaced (its failed requests counted).

Traefik and pebble publish nothing: a host-mode port in a swarm binds every
interface, and tests listen on loopback or Docker's networks only. The tests
reach them at their tasks' addresses on docker_gwbridge (198.18.0.0/15).
"""

import json
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import bcrypt
import pytest

from tests.stack.conftest import (
    ADDRESSES,
    ARTIFACTS,
    EXAMPLE_DB_PASSWORD,
    PASSWORD,
    Stack,
    env_file_text,
    record_figures,
    run,
    timed,
)
from tests.stack.load import (
    DEPLOY_LOAD,
    Load,
    Outcome,
    figures,
    item_names_in_database,
    statuses,
    write_timeline,
)

STACK_NAME = "fastapi-swarm-e2e"
SWARM_DOMAIN = "fastapi-swarm.test"
SWARM_FILES = (
    "compose.yaml:compose.swarm.yaml:tests/stack/compose.test.yaml"
    ":tests/stack/compose.swarm.test.yaml"
)
BROKEN_OVERLAY = "tests/stack/releases/compose.broken.yaml"
REPLICAS = 3
WORKERS = int(DEPLOY_LOAD["workers"])
DB_LABEL = "fastapi-stack.db"


class SwarmStack(Stack):
    def service(self, name: str) -> str:
        return f"{STACK_NAME}_{name}"

    def containers(self, service: str) -> list[str]:
        """The running containers of a service's tasks (all on this one node)."""
        label = f"com.docker.swarm.service.name={self.service(service)}"
        return run(
            ["docker", "ps", "--quiet", "--no-trunc", "--filter", f"label={label}"]
        ).stdout.split()

    def psql(self, query: str) -> str:
        user = self.settings.get("POSTGRES_USER", "app")
        database = self.settings.get("POSTGRES_DB", "app")
        (db,) = self.containers("db")
        command = ["docker", "exec", db, "psql", "-U", user, "-d", database, "-At", "-c", query]
        return run(command).stdout

    def deploy_swarm(self, **env: str) -> subprocess.CompletedProcess[str]:
        """`make deploy-swarm` with extra environment: its result, pass or fail."""
        return run(["make", "deploy-swarm"], env={**self.env, **env}, check=False, timeout=900)

    def app_image(self) -> str:
        spec = run(
            [
                "docker",
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                self.service("app"),
            ]
        )
        return spec.stdout.strip().split("@")[0]

    def running_tasks(self, service: str) -> list[dict[str, Any]]:
        result = run(
            [
                "docker",
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{json .}}",
                self.service(service),
            ]
        )
        return [json.loads(line) for line in result.stdout.splitlines()]


def gwbridge_address(container: str) -> str:
    template = f'{{{{with index .Containers "{container}"}}}}{{{{.IPv4Address}}}}{{{{end}}}}'
    address = run(["docker", "network", "inspect", "docker_gwbridge", "--format", template]).stdout
    assert address.strip(), f"container {container[:12]} has no docker_gwbridge address"
    return address.strip().split("/")[0]


def swarm_state() -> str:
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout.strip()


def of_the_stack(kind: str, *, running: bool = False) -> list[str]:
    """The ids of the stack's containers (all, or the running ones), networks or volumes."""
    label = f"label=com.docker.stack.namespace={STACK_NAME}"
    extra = ["--all"] if kind == "container" and not running else []
    return run(["docker", kind, "ls", *extra, "--quiet", "--filter", label]).stdout.split()


def remove_stack(swarm: SwarmStack) -> None:
    run(["docker", "stack", "rm", STACK_NAME], check=False)
    swarm.wait_until(
        "the stack's tasks and networks to go",
        lambda: not of_the_stack("container", running=True) and not of_the_stack("network"),
        timeout=120,
    )
    exited = of_the_stack("container")  # the migration job's, which swarm leaves behind
    if exited:
        run(["docker", "rm", *exited], check=False)
    volumes = of_the_stack("volume")
    if volumes:
        run(["docker", "volume", "rm", *volumes], check=False)


def fetch_root(swarm: SwarmStack) -> None:
    """Pebble's root of this run, from its management API (a new root at every start)."""
    (pebble,) = swarm.containers("pebble")
    minica = swarm.workdir / "swarm-pebble-minica.pem"
    minica.write_text(
        run(["docker", "exec", pebble, "cat", "/test/certs/pebble.minica.pem"]).stdout
    )
    context = ssl.create_default_context(cafile=str(minica))
    context.check_hostname = False  # minica names pebble's service, not its address
    root = swarm.workdir / "swarm-acme-root.pem"
    url = f"https://{gwbridge_address(pebble)}:15000/roots/0"

    def fetch() -> bool:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            root.write_bytes(response.read())
        return True

    swarm.wait_until("pebble's root certificate", fetch, timeout=30)
    swarm.root_ca = root


def save_app_logs(swarm: SwarmStack) -> None:
    """The app's replicas' logs, for the record. From the containers: `docker service
    logs` can hang here once a task was killed."""
    lines = []
    for container in swarm.containers("app"):
        logs = run(["docker", "logs", "--timestamps", container], check=False, timeout=30)
        lines.append(f"=== {container[:12]}\n{logs.stdout}{logs.stderr}")
    (ARTIFACTS / "swarm-app.log").write_text("\n".join(lines))


@pytest.fixture(scope="module")
def swarm(stack: Stack) -> Iterator[SwarmStack]:
    initialized = False
    if swarm_state() != "active":
        # The default address pool (10.0.0.0/8) is off limits here.
        run(
            [
                "docker",
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--default-addr-pool",
                "198.19.0.0/16",
            ]
        )
        initialized = True
    workdir = stack.workdir
    settings = {
        **stack.settings,
        "DOMAIN": SWARM_DOMAIN,
        "PROXY_NETWORK": f"{STACK_NAME}-proxy",
        "PROXY_SUBNET": "198.18.202.0/24",
        "APP_IMAGE": "fastapi-stack-app:swarm-e2e",
        "ENV_FILE": str(workdir / "swarm.env"),
        "APP_REPLICAS": str(REPLICAS),
        "COMPOSE_PROFILES": "metrics",
        "PROMETHEUS_USERS": "ops:"
        + bcrypt.hashpw(secrets.token_bytes(12), bcrypt.gensalt(rounds=6)).decode(),
    }
    swarm = SwarmStack(workdir=workdir, settings=settings, domain=SWARM_DOMAIN)
    (workdir / "swarm.env").write_text(env_file_text(settings))
    swarm.env = {
        **os.environ,
        "ENV_FILE": str(workdir / "swarm.env"),
        "STACK_NAME": STACK_NAME,
        "SWARM_COMPOSE_FILE": SWARM_FILES,
        "COMPOSE_PROJECT_NAME": STACK_NAME,
    }
    remove_stack(swarm)  # an interrupted run's
    try:
        started = time.monotonic()
        # The first deploy cannot verify the certificate: pebble, deployed with the
        # stack, makes its root only when it starts. The test checks it below, and
        # every later deploy's check verifies it.
        result = swarm.deploy_swarm(HEALTH_CHECK_INSECURE="true")
        (ARTIFACTS / "swarm-deploy.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        timed("make deploy-swarm: build, stack deploy, migrate, 3 replicas, certificate", started)
        fetch_root(swarm)
        (traefik,) = swarm.containers("traefik")
        ADDRESSES[SWARM_DOMAIN] = gwbridge_address(traefik)
        swarm.env["HEALTH_CHECK_CA_FILE"] = str(swarm.root_ca)
        yield swarm
    finally:
        save_app_logs(swarm)
        started = time.monotonic()
        remove_stack(swarm)
        if initialized:
            run(["docker", "swarm", "leave", "--force"], check=False)
            run(["docker", "network", "rm", "docker_gwbridge"], check=False)
        timed("swarm stack removed", started)


@pytest.fixture(scope="module")
def swarm_user(swarm: SwarmStack) -> dict[str, Any]:
    with swarm.client() as client:
        response = client.post(
            "/api/auth/register",
            json={"email": f"swarm-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD},
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_swarm_serves_https_with_the_acme_certificate(swarm: SwarmStack) -> None:
    with (
        socket.create_connection((SWARM_DOMAIN, 443), timeout=10) as raw,
        swarm.ssl_context().wrap_socket(raw, server_hostname=SWARM_DOMAIN) as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    assert ("DNS", SWARM_DOMAIN) in cert["subjectAltName"]
    issuer = str(cert["issuer"])  # ((("commonName", "Pebble Intermediate CA …"),),)
    assert "'commonName', 'Pebble Intermediate CA" in issuer, issuer


def test_the_api_flow_through_the_swarm(swarm: SwarmStack, swarm_user: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {swarm_user['access_token']}"}
    with swarm.client(headers=headers) as client:
        assert client.get("/api/users/me").json()["email"] == swarm_user["user"]["email"]
        created = client.post("/api/items/", json={"name": "swarm item", "price": 3.5})
        assert created.status_code == 201, created.text
        listed = client.get("/api/items/").json()
        assert [item["name"] for item in listed["items"]] == ["swarm item"]
        refreshed = client.post(
            "/api/token/refresh", json={"refresh_token": swarm_user["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text


def test_three_replicas_all_answer(swarm: SwarmStack) -> None:
    tasks = swarm.running_tasks("app")
    assert len(tasks) == REPLICAS, tasks
    network = swarm.settings["PROXY_NETWORK"]
    addresses = {
        swarm.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"] + ":8000"
        for container in swarm.containers("app")
    }
    assert len(addresses) == REPLICAS
    since = int(time.time()) - 1
    probe = uuid.uuid4().hex
    with swarm.client() as client:
        for _ in range(10 * REPLICAS):
            assert client.get(f"/api/health/ready?probe={probe}").status_code == 200
    time.sleep(1)
    logs = run(
        ["docker", "service", "logs", "--raw", "--since", str(since), swarm.service("traefik")]
    )
    entries = [json.loads(line) for line in logs.stdout.splitlines() if probe in line]
    assert {entry["ServiceAddr"] for entry in entries} == addresses


def test_prometheus_scrapes_every_task(swarm: SwarmStack) -> None:
    """The metrics profile in the swarm: Prometheus finds the app's tasks one by one
    (`app` is dnsrr: one DNS answer per task), Traefik and the Postgres exporter,
    whose database password came as a Docker secret. Asked inside its container."""
    (prometheus,) = swarm.containers("prometheus")

    def targets() -> dict[str, list[str]] | None:
        answer = run(
            [
                "docker",
                "exec",
                prometheus,
                "wget",
                "-q",
                "-O",
                "-",
                "http://127.0.0.1:9090/api/v1/targets?state=active",
            ],
            check=False,
        )
        if answer.returncode != 0:
            return None
        up: dict[str, list[str]] = {}
        for target in json.loads(answer.stdout)["data"]["activeTargets"]:
            if target["health"] == "up":
                up.setdefault(target["labels"]["job"], []).append(target["labels"]["instance"])
        done = len(up.get("app", [])) == REPLICAS and {"traefik", "postgres"} <= set(up)
        return up if done else None

    up: dict[str, list[str]] = swarm.wait_until(
        "Prometheus scraping every task", targets, timeout=120, interval=3
    )
    tasks = {
        settings["IPAddress"]
        for container in swarm.containers("app")
        for settings in swarm.inspect(container)["NetworkSettings"]["Networks"].values()
    }
    assert {instance.rsplit(":", 1)[0] for instance in up["app"]} <= tasks


def test_placement_and_docker_secrets(swarm: SwarmStack) -> None:
    (db_task,) = swarm.running_tasks("db")
    node = json.loads(run(["docker", "node", "inspect", db_task["Node"]]).stdout)[0]
    assert node["Spec"]["Labels"].get(DB_LABEL) == "true"
    (traefik_task,) = swarm.running_tasks("traefik")
    manager = json.loads(run(["docker", "node", "inspect", traefik_task["Node"]]).stdout)[0]
    assert manager["Spec"]["Role"] == "manager"

    service = run(["docker", "service", "inspect", swarm.service("app")]).stdout
    for secret in ("SECRET_KEY", "POSTGRES_PW", "FIRST_SUPERUSER_PASSWORD"):
        assert swarm.settings[secret] not in service, f"{secret}'s value is in the service spec"
        assert f"{secret}_FILE=/run/secrets/{secret}" in service
    container = swarm.containers("app")[0]
    environment = swarm.inspect(container)["Config"]["Env"]
    assert not [line for line in environment if line.startswith(("SECRET_KEY=", "POSTGRES_PW="))]
    # The user's example password, with its backtick and braces, through a Docker
    # secret to the app (which connects with it: the replicas are healthy).
    stored = run(["docker", "exec", container, "cat", "/run/secrets/POSTGRES_PW"]).stdout
    assert stored == EXAMPLE_DB_PASSWORD
    (db,) = swarm.containers("db")
    db_environment = swarm.inspect(db)["Config"]["Env"]
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/POSTGRES_PASSWORD" in db_environment


@dataclass
class DeployUnderLoad:
    """What a `make deploy-swarm` under load did: its result and every request."""

    result: subprocess.CompletedProcess[str]
    outcomes: list[Outcome]
    acknowledged: set[str]
    found: set[str]


def deploy_under_load(
    swarm: SwarmStack, user: dict[str, Any], label: str, title: str, **env: str
) -> DeployUnderLoad:
    """Deploy while the load runs; keep the log, the timeline and the figures."""
    prefix = f"swarm-{label}-{uuid.uuid4().hex[:8]}"
    marks: dict[str, float] = {}
    with Load(
        swarm, user["access_token"], name_prefix=prefix, workers=WORKERS, rate=DEPLOY_LOAD["rate"]
    ) as load:
        time.sleep(2)
        marks["deploy started"] = time.monotonic()
        result = swarm.deploy_swarm(**env)
        marks["deploy done"] = time.monotonic()
        time.sleep(2)
    outcomes = load.outcomes
    (ARTIFACTS / f"swarm-{label}.log").write_text(result.stdout + result.stderr)
    write_timeline(ARTIFACTS / f"timeline-swarm-{label}.csv", outcomes, marks)
    acknowledged = {o.item_name for o in outcomes if o.acknowledged}
    found = item_names_in_database(swarm, prefix)
    record_figures(
        title,
        {
            **figures(outcomes),
            "deploy s": round(marks["deploy done"] - marks["deploy started"], 1),
            "writes acknowledged": len(acknowledged),
            "writes lost": len(acknowledged - found),
        },
    )
    return DeployUnderLoad(result, outcomes, acknowledged, found)


def test_a_rolling_update_under_load_fails_no_request(
    swarm: SwarmStack, swarm_user: dict[str, Any]
) -> None:
    before = swarm.app_image()
    deploy = deploy_under_load(
        swarm,
        swarm_user,
        "rolling-update",
        "swarm rolling update under load",
        APP_REVISION=f"e2e-{uuid.uuid4().hex[:12]}",
    )
    result = deploy.result
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    after = swarm.app_image()
    assert after != before
    images = {task["Image"].split("@")[0] for task in swarm.running_tasks("app")}
    assert images == {after}
    assert len(swarm.running_tasks("app")) == REPLICAS
    assert statuses(o for o in deploy.outcomes if not o.ok) == {}
    assert deploy.acknowledged
    assert deploy.acknowledged <= deploy.found


def test_a_release_whose_healthcheck_fails_is_rolled_back(
    swarm: SwarmStack, swarm_user: dict[str, Any]
) -> None:
    before = swarm.app_image()
    deploy = deploy_under_load(
        swarm,
        swarm_user,
        "broken-release",
        "swarm deploy of a release whose healthcheck fails, under load",
        SWARM_COMPOSE_FILE=f"{SWARM_FILES}:{BROKEN_OVERLAY}",
        BREAK="unready",
    )
    assert deploy.result.returncode != 0
    assert "did not take over" in deploy.result.stderr, deploy.result.stderr[-2000:]
    assert swarm.app_image() == before
    images = {task["Image"].split("@")[0] for task in swarm.running_tasks("app")}
    assert images == {before}
    assert statuses(o for o in deploy.outcomes if not o.ok) == {}
    assert deploy.acknowledged <= deploy.found


def test_a_replica_killed_is_replaced(swarm: SwarmStack, swarm_user: dict[str, Any]) -> None:
    victim = swarm.containers("app")[0]
    prefix = f"swarm-kill-{uuid.uuid4().hex[:8]}"
    marks: dict[str, float] = {}
    with Load(
        swarm,
        swarm_user["access_token"],
        name_prefix=prefix,
        workers=WORKERS,
        rate=DEPLOY_LOAD["rate"],
    ) as load:
        time.sleep(2)
        marks["SIGKILL"] = time.monotonic()
        run(["docker", "kill", "--signal", "KILL", victim])

        def replaced() -> bool:
            running = swarm.containers("app")
            return (
                len(running) == REPLICAS
                and victim not in running
                and all(
                    swarm.inspect(c)["State"].get("Health", {}).get("Status") == "healthy"
                    for c in running
                )
            )

        swarm.wait_until("a replacement replica, healthy", replaced, timeout=90)
        marks["replaced"] = time.monotonic()
        time.sleep(3)
    outcomes = load.outcomes
    write_timeline(ARTIFACTS / "timeline-swarm-sigkill.csv", outcomes, marks)
    failed = [o for o in outcomes if not o.ok]
    acknowledged = {o.item_name for o in outcomes if o.acknowledged}
    found = item_names_in_database(swarm, prefix)
    record_figures(
        "swarm replica killed with SIGKILL under load",
        {
            **figures(outcomes),
            "replaced after s": round(marks["replaced"] - marks["SIGKILL"], 1),
            "writes acknowledged": len(acknowledged),
            "writes lost": len(acknowledged - found),
        },
    )
    # At most the requests in flight on the killed replica (one per client at most).
    assert len(failed) <= WORKERS, statuses(failed)
    assert acknowledged <= found
