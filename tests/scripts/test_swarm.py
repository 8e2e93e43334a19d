"""scripts/swarm.py: the swarm deploy's decisions, on recorded docker output
(tests/scripts/fake.py). The same paths against a real swarm are
tests/stack/test_17_swarm.py."""

import io
import json
from typing import Any

import pytest

from scripts.runner import Result
from scripts.stack import Console, Refusal, Settings, main
from scripts.swarm import (
    NO_LOCAL_CERTIFICATE,
    Swarm,
    db_node_plan,
    manager_refusal,
    migrations_refusal,
    run_command,
    takeover_refusal,
    unused,
    without_digest,
)
from tests.scripts.fake import FakeRunner

RELEASE_ID = "sha256:" + "3" * 64
RELEASE = "fastapi-stack-app:333333333333"
PREVIOUS = "fastapi-stack-app:111111111111"


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        ("active true", None),
        (
            "active false",
            "this node is a swarm worker: deploy from a manager (docker node ls there)",
        ),
        ("inactive false", "this engine is not in a swarm: docker swarm init --advertise-addr"),
        ("", "this engine is not in a swarm"),
    ],
)
def test_only_a_manager_deploys(state: str, refusal: str | None) -> None:
    found = manager_refusal(state)
    assert found == refusal if refusal is None else (found or "").startswith(refusal)


def test_the_database_node() -> None:
    assert db_node_plan(labelled=1, nodes=3) == "ready"
    assert db_node_plan(labelled=0, nodes=1) == "label"
    assert db_node_plan(labelled=0, nodes=2) == "refuse"


@pytest.mark.parametrize(
    ("serving", "state", "refusal"),
    [
        (RELEASE, "", None),  # a first deploy: no update recorded
        (RELEASE, "completed: update completed", None),
        (
            PREVIOUS,
            "rollback_completed: rollback completed",
            f"the new release did not take over (rollback_completed: rollback completed); "
            f"{PREVIOUS} serves on",
        ),
        (
            RELEASE,
            "paused: update paused due to failure",
            "the new release did not take over (paused: update paused due to failure); "
            f"{RELEASE} serves on",
        ),
        (PREVIOUS, "", f"the new release did not take over (no update); {PREVIOUS} serves on"),
    ],
)
def test_did_the_release_take_over(serving: str, state: str, refusal: str | None) -> None:
    assert takeover_refusal(serving, RELEASE, state) == refusal


def test_the_migration_job() -> None:
    assert migrations_refusal("Complete 3 seconds ago") is None
    assert migrations_refusal("Failed 2 seconds ago") == (
        "the migration job did not complete (Failed 2 seconds ago): the new release is not "
        "ready, the previous one serves on"
    )
    assert migrations_refusal("") is not None


def test_what_is_pruned_and_digests() -> None:
    stack_file = json.dumps({"secrets": {"k": {"name": "s_secret_key_abc"}}})
    assert unused(["s_secret_key_abc", "s_secret_key_old"], stack_file) == ["s_secret_key_old"]
    assert without_digest(f"{RELEASE}@sha256:abcd") == RELEASE
    assert without_digest(RELEASE) == RELEASE


ENVIRON = {
    "CERT_RESOLVER": "letsencrypt",
    "DOMAIN": "fastapi-swarm.test",
    "ACME_CA_SERVER": "https://pebble:14000/dir",
    "ACME_EMAIL": "ops@example.com",
    "APP_REVISION": "e2e-2",
    "APP_REPLICAS": "3",
    "STACK_NAME": "s",
}
CONFIG = {
    "name": "s",
    "services": {"app": {"image": "fastapi-stack-app:swarm-e2e", "environment": {}}},
}


def swarm_runner(
    *, serving: str = RELEASE, state: str = "completed: done", **environ: str
) -> FakeRunner:
    answers: list[tuple[str, Any]] = [
        ("info --format {{.Swarm.LocalNodeState}}", "active true\n"),
        ("node ls --filter node.label=fastapi-stack.db=true", ""),
        ("node ls --quiet", "n0de\n"),
        ("config --format json", json.dumps(CONFIG)),
        ("image inspect --format {{.Id}}", RELEASE_ID + "\n"),
        ("{{.Spec.TaskTemplate.ContainerSpec.Image}}", f"{serving}@sha256:abcd\n"),
        ("{{.UpdateStatus.State}}", state + "\n"),
        ("{{.CurrentState}} s_migrate", "Complete 3 seconds ago\nShutdown 5 minutes ago\n"),
        ("service ps --filter desired-state=running --quiet s_traefik", "t4sk\n"),
        ("{{.PublishedPort}}", "\n"),
        ("{{.Status.ContainerStatus.ContainerID}} t4sk", "c0ntainer\n"),
        ("network inspect docker_gwbridge", "198.18.0.4/16\n"),
        ("secret ls", "s_secret_key_new\ns_secret_key_old\n"),
        ("config ls", ""),
    ]
    return FakeRunner(answers, ENVIRON | environ)


def swarm_deploy(runner: FakeRunner) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    console = Console("swarm", out, err)
    swarm = Swarm(runner, console, Settings(runner.environ, "swarm.env"))
    try:
        swarm.deploy()
    except Refusal as refusal:
        console.error(str(refusal))
    return out.getvalue(), err.getvalue()


def test_a_swarm_deploy() -> None:
    runner = swarm_runner()
    out, err = swarm_deploy(runner)
    assert err == ""
    assert "[swarm] one-node swarm: labelling this node for the database" in out
    assert runner.called("node update --label-add fastapi-stack.db=true n0de")
    assert runner.called(f"docker tag {RELEASE_ID} {RELEASE}")
    assert not runner.called("docker push")  # one node: nothing to pull
    (deploy,) = runner.called("docker stack deploy")
    assert deploy.startswith("docker stack deploy --detach=false --prune --compose-file /")
    assert deploy.endswith("/stack.json s")
    # Rendered with the release's image, through the swarm's compose files.
    assert runner.environ.get("HEALTH_CHECK_ADDRESS") == "198.18.0.4"  # the task's gwbridge
    assert runner.called("--resolve fastapi-swarm.test:443:198.18.0.4")
    assert runner.called("docker secret rm s_secret_key_new")  # not in this stack file
    assert out.splitlines()[-1] == (
        f"[swarm] deployed {RELEASE} in 0s: https://fastapi-swarm.test/docs"
    )
    assert (
        f"[swarm] deploying {RELEASE} as stack s (3 app replicas; a rolling update if it runs)"
        in out
    )


def test_eight_replicas_through_the_pooler_fit_fifty_connections() -> None:
    pooler = {"COMPOSE_PROFILES": "pgbouncer", "DB_POOLER_URL": "pgbouncer:6432"}
    budget = {"APP_REPLICAS": "8", "POSTGRES_MAX_CONNECTIONS": "50"}
    _, err = swarm_deploy(swarm_runner(**budget))
    assert "8 replicas plus one during an update may open 360 database connections" in err
    runner = swarm_runner(**budget, **pooler)
    pgbouncer = {"services": {"pgbouncer": {"image": "fastapi-stack-pgbouncer:1.24"}}}
    runner.answers.insert(0, ("config --format json pgbouncer", json.dumps(pgbouncer)))
    out, err = swarm_deploy(runner)
    assert err == ""
    assert "[swarm] building fastapi-stack-pgbouncer:1.24" in out
    assert runner.called("build pgbouncer")
    assert runner.called("docker stack deploy")


def test_a_release_rolled_back_is_reported_and_the_tag_put_back() -> None:
    runner = swarm_runner(serving=PREVIOUS, state="rollback_completed: rolled back")
    _, err = swarm_deploy(runner)
    assert err.splitlines()[-1] == (
        "[swarm] ERROR: the new release did not take over (rollback_completed: rolled back); "
        f"{PREVIOUS} serves on"
    )
    assert runner.called(f"docker tag {PREVIOUS} fastapi-stack-app:swarm-e2e")
    assert runner.called("service logs --tail 30 --no-task-ids s_app")
    assert not runner.called("curl")


def test_a_failed_stack_deploy_that_rolled_nothing_back() -> None:
    runner = swarm_runner()
    runner.stack_deploy_status = 1
    _, err = swarm_deploy(runner)
    assert err.splitlines()[-1] == "[swarm] ERROR: docker stack deploy failed (exit 1, see above)"


def test_failed_migrations_stop_the_deploy() -> None:
    runner = swarm_runner()
    runner.answers.insert(0, ("{{.CurrentState}} s_migrate", "Failed 1 second ago\n"))
    _, err = swarm_deploy(runner)
    assert "[swarm] ERROR: the migration job did not complete (Failed 1 second ago)" in err
    assert runner.called("service logs --tail 30 --no-task-ids s_migrate")


@pytest.mark.parametrize(
    ("environ", "answers", "refusal"),
    [
        ({"CERT_RESOLVER": ""}, [], NO_LOCAL_CERTIFICATE),
        (
            {},
            [("info --format {{.Swarm.LocalNodeState}}", "active false\n")],
            "this node is a swarm worker",
        ),
        (
            {"APP_REPLICAS": "4"},
            [],
            "4 replicas plus one during an update may open 200 database connections (40 each), "
            "POSTGRES_MAX_CONNECTIONS is 200",
        ),
        (
            {
                "APP_REPLICAS": "8",
                "POSTGRES_MAX_CONNECTIONS": "50",
                "COMPOSE_PROFILES": "pgbouncer",
                "DB_POOLER_URL": "pgbouncer:6432",
                "PGBOUNCER_MAX_CLIENT_CONN": "300",
            },
            [],
            "8 replicas plus one during an update may open 360 connections to PgBouncer "
            "(40 each), PGBOUNCER_MAX_CLIENT_CONN is 300",
        ),
        (
            {
                "POSTGRES_MAX_CONNECTIONS": "50",
                "COMPOSE_PROFILES": "pgbouncer",
                "DB_POOLER_URL": "pgbouncer:6432",
                "PGBOUNCER_POOL_SIZE": "48",
            },
            [],
            "PgBouncer may open 48 database connections (PGBOUNCER_POOL_SIZE), Postgres allows 50",
        ),
        (
            {},
            [("node ls --quiet", "n1\nn2\n")],
            "no node is labelled for the database: docker node update --label-add "
            "fastapi-stack.db=true <node> (its volume lives there)",
        ),
    ],
)
def test_swarm_refusals_change_nothing(
    environ: dict[str, str], answers: list[tuple[str, str]], refusal: str
) -> None:
    runner = swarm_runner(**environ)
    runner.answers[:0] = answers
    _, err = swarm_deploy(runner)
    assert f"[swarm] ERROR: {refusal}" in err
    assert not runner.called("build")
    assert not runner.called("stack deploy")


def test_several_nodes_push_the_release() -> None:
    runner = swarm_runner()
    runner.answers[:0] = [
        ("node ls --filter", "n1\n"),
        ("node ls --quiet", "n1\nn2\n"),
        ("docker push", Result(1)),
    ]
    _, err = swarm_deploy(runner)
    assert err.splitlines()[-1] == (
        f"[swarm] ERROR: could not push {RELEASE}: on a swarm of several nodes, APP_IMAGE must "
        "name a registry you are logged in to (docs/deploy.md, Docker Swarm)"
    )


def test_the_swarm_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"], run_command, prefix="swarm", runner=FakeRunner([])) == 1
    assert capsys.readouterr().err == "[swarm] ERROR: usage: scripts/swarm.sh deploy|ps|down\n"
