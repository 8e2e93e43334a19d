"""scripts/stack.py: the refusals, the connection budgets, the HTTPS check, and the
zero-downtime deploy's decisions, on recorded docker output (tests/scripts/fake.py).
The same paths against a real engine are tests/stack/test_15_zero_downtime_deploy.py."""

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from scripts.env_example import example_settings
from scripts.runner import CommandFailed, Result
from scripts.stack import (
    Console,
    ContainerState,
    Refusal,
    Settings,
    Stack,
    batch_size,
    check_settings,
    connections_per_container,
    database_client_environment,
    https_check,
    image_repository,
    is_routed,
    main,
    parse_env_file,
    parse_max_connections,
    pooled_rolling_update_refusal,
    pooled_surge_capacity,
    pooled_surge_refusal,
    pooler_pool_refusal,
    public_url,
    rolling_update_refusal,
    routed_addresses,
    surge_capacity,
    surge_refusal,
)
from tests.scripts.fake import FakeRunner

REPO = Path(__file__).resolve().parents[2]


def settings(**values: str) -> Settings:
    return Settings(dict(values), "stack.env")


# --- The settings file and the refusals -------------------------------------------


def test_the_settings_file_reads_as_source_read_it() -> None:
    text = (
        "# a comment\n\nENVIRONMENT='production'\nPOSTGRES_PW='`b{5:P3kUv5LdJF.'\n"
        "SECRET_KEY='a$b \"c\" # not a comment'\nexport DOMAIN=example.com # trailing\n"
        "SMTP_HOST=\"smtp.example.com\"\nEMPTY=\nHASH=a#b\nQUOTED_HASH='x'#y # z\n"
    )
    assert parse_env_file(text) == {
        "ENVIRONMENT": "production",
        "POSTGRES_PW": "`b{5:P3kUv5LdJF.",
        "SECRET_KEY": 'a$b "c" # not a comment',
        "DOMAIN": "example.com",
        "SMTP_HOST": "smtp.example.com",
        "EMPTY": "",
        "HASH": "a#b",
        "QUOTED_HASH": "x#y",
    }


def test_the_example_settings_file_reads_whole() -> None:
    """Every `NAME='value'` of .env.example, as scripts/env_example.py reads it."""
    parsed = parse_env_file((REPO / ".env.example").read_text())
    assert parsed == {setting.name: setting.value for setting in example_settings()}


def test_unset_or_empty_settings_read_as_the_example_defaults() -> None:
    given = settings(DOMAIN="", HTTPS_PORT="8443")
    assert given["DOMAIN"] == "stack.localhost"  # .env.example's
    assert given["HTTPS_PORT"] == "8443"
    assert given.wait_timeout == 180
    assert settings(WAIT_TIMEOUT="20").wait_timeout == 20
    with pytest.raises(Refusal, match="WAIT_TIMEOUT must be a whole number, not '2m'"):
        _ = settings(WAIT_TIMEOUT="2m").wait_timeout


PEBBLE = "https://pebble:14000/dir"


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        (
            {"CERT_RESOLVER": "letsencrypt", "DOMAIN": "stack.localhost"},
            "Let's Encrypt cannot validate stack.localhost (not a public name); "
            "set CERT_RESOLVER='' for the local certificate",
        ),
        ({"CERT_RESOLVER": "letsencrypt", "DOMAIN": "localhost"}, "cannot validate localhost"),
        ({"CERT_RESOLVER": "letsencrypt", "DOMAIN": "app.lan"}, "cannot validate app.lan"),
        (
            {"CERT_RESOLVER": "acme"},
            "CERT_RESOLVER must be '' (local certificate) or 'letsencrypt', not 'acme'",
        ),
        (
            {"COMPOSE_PROFILES": "x,mail-catcher", "ENVIRONMENT": "production"},
            "the mail catcher (COMPOSE_PROFILES=mail-catcher) is for development: it would "
            "swallow every mail and show them at https://mail.stack.localhost. Remove it from "
            "COMPOSE_PROFILES and set SMTP_HOST to your provider (docs/mail.md, Setting up SMTP)",
        ),
        (
            {"COMPOSE_PROFILES": "metrics"},
            "COMPOSE_PROFILES=metrics needs PROMETHEUS_USERS, who may open "
            "https://metrics.stack.localhost (htpasswd -nbB admin 'a-password')",
        ),
        (
            {"TRAEFIK_DASHBOARD": "true"},
            "TRAEFIK_DASHBOARD=true needs TRAEFIK_DASHBOARD_USERS "
            "(htpasswd -nbB admin 'a-password')",
        ),
        (
            {"COMPOSE_PROFILES": "mail-catcher,pgbouncer"},
            "COMPOSE_PROFILES has 'pgbouncer' but DB_POOLER_URL is empty: the app would bypass "
            "PgBouncer. Set DB_POOLER_URL='pgbouncer:6432'",
        ),
        (
            {"DB_POOLER_URL": "pgbouncer:6432"},
            "DB_POOLER_URL is 'pgbouncer:6432' but COMPOSE_PROFILES has no 'pgbouncer': add it "
            "(COMPOSE_PROFILES='pgbouncer'), or empty DB_POOLER_URL",
        ),
    ],
)
def test_settings_that_would_start_a_broken_or_unsafe_stack_are_refused(
    values: dict[str, str], refusal: str
) -> None:
    with pytest.raises(Refusal) as refused:
        check_settings(settings(**values))
    assert refusal in str(refused.value)


@pytest.mark.parametrize(
    "values",
    [
        {},  # .env.example's: the local certificate
        {"CERT_RESOLVER": "letsencrypt", "DOMAIN": "example.com", "ACME_EMAIL": "a@example.com"},
        # A private ACME CA may validate a test name (the stack suite's pebble does).
        {
            "CERT_RESOLVER": "letsencrypt",
            "DOMAIN": "x.test",
            "ACME_CA_SERVER": PEBBLE,
            "ACME_EMAIL": "a@b.c",
        },
        {"COMPOSE_PROFILES": "mail-catcher", "ENVIRONMENT": "local"},
        {"COMPOSE_PROFILES": "mail-catcher-not", "ENVIRONMENT": "production"},
        {"TRAEFIK_DASHBOARD": "true", "TRAEFIK_DASHBOARD_USERS": "admin:$2y$..."},
        {"COMPOSE_PROFILES": "pgbouncer", "DB_POOLER_URL": "pgbouncer:6432"},
        # A pooler of one's own (a managed one), outside the stack.
        {"DB_POOLER_URL": "pooler.example.com:6432"},
        {
            "COMPOSE_PROFILES": "metrics",
            "PROMETHEUS_USERS": "admin:$2y$...",
            "ENVIRONMENT": "production",
        },
    ],
)
def test_settings_that_are_fine_pass(values: dict[str, str]) -> None:
    assert check_settings(settings(**values)) == []


def test_no_acme_email_is_a_warning() -> None:
    assert check_settings(settings(CERT_RESOLVER="letsencrypt", DOMAIN="example.com")) == [
        "warning: ACME_EMAIL is empty: the CA cannot reach you about your certificates"
    ]


# --- The connection budgets -------------------------------------------------------


def test_connections_per_container_defaults_come_from_the_example() -> None:
    example = {setting.name: setting.value for setting in example_settings()}
    expected = int(example["WEB_CONCURRENCY"]) * sum(
        int(example[name]) for name in ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_READ_POOL_SIZE")
    )
    assert connections_per_container(settings()) == expected
    defaults = {"WEB_CONCURRENCY": "3", "DB_POOL_SIZE": "5", "DB_MAX_OVERFLOW": "1"}
    chosen = Settings({"DB_READ_POOL_SIZE": "4"}, defaults=defaults | {"DB_READ_POOL_SIZE": "9"})
    assert connections_per_container(chosen) == 3 * (5 + 1 + 4)
    with pytest.raises(Refusal, match="WEB_CONCURRENCY must be a whole number"):
        connections_per_container(settings(WEB_CONCURRENCY="two"))


@pytest.mark.parametrize(
    ("running", "per_container", "max_connections", "surge"),
    [
        (1, 40, 100, 1),  # the stack suite's one replica: one beside it
        (2, 40, 100, 0),  # ... two: no third one (test_15's refusal)
        (3, 10, 100, 3),  # room for more than running: as many, all at once
        (4, 20, 100, 0),
        (2, 40, 123, 1),  # (123 - 3) / 40 = 3, one beside the two
        (1, 40, 82, 0),  # 79 / 40 = 1: the running one only
        (1, 40, 2, -1),  # less than the reserve: bash's division, towards zero
    ],
)
def test_surge_capacity(running: int, per_container: int, max_connections: int, surge: int) -> None:
    assert surge_capacity(running, per_container, max_connections) == surge


def test_the_surge_refusal_says_what_to_change() -> None:
    assert surge_refusal(2, 40, 100) == (
        "a new container beside the 2 running needs 120 database connections (each may open "
        "40), Postgres allows 100: lower WEB_CONCURRENCY or the DB pools, or raise "
        "max_connections, or deploy with a short interruption (make up). Nothing was changed"
    )


def test_the_rolling_update_budget() -> None:
    assert rolling_update_refusal(3, 40, 200) is None  # 160 <= 197
    assert rolling_update_refusal(3, 49, 200) is None  # 196
    assert rolling_update_refusal(4, 40, 200) == (
        "4 replicas plus one during an update may open 200 database connections (40 each), "
        "POSTGRES_MAX_CONNECTIONS is 200: raise it, or lower APP_REPLICAS, WEB_CONCURRENCY or "
        "the DB pools. Nothing was changed"
    )


def test_with_the_pooler_the_budget_is_pgbouncers_clients_and_its_pool() -> None:
    # 8 replicas x 2 workers with the default pools (40 each) against max_connections=50:
    # without the pooler not even one more container fits, nor does a rolling update...
    assert surge_capacity(8, 40, 50) < 1
    assert rolling_update_refusal(8, 40, 50) is not None
    # ...with it, Postgres holds PgBouncer's 20 and PgBouncer the 16 containers' 640.
    assert pooled_surge_capacity(8, 40, 1000) == 8
    assert pooled_rolling_update_refusal(8, 40, 1000, 20, 50) is None
    assert pooled_surge_capacity(8, 40, 600) == 7  # 15 fit
    assert pooled_surge_capacity(8, 40, 320) == 0


def test_the_pooled_refusals_say_what_to_change() -> None:
    assert pooler_pool_refusal(47, 50) is None
    assert pooler_pool_refusal(48, 50) == (
        "PgBouncer may open 48 database connections (PGBOUNCER_POOL_SIZE), Postgres allows 50 "
        "(3 kept for migrations and psql): lower PGBOUNCER_POOL_SIZE or raise max_connections. "
        "Nothing was changed"
    )
    assert pooled_surge_refusal(8, 40, 320) == (
        "a new container beside the 8 running needs 360 connections to PgBouncer (each may open "
        "40), PGBOUNCER_MAX_CLIENT_CONN is 320: raise it, or lower WEB_CONCURRENCY or the DB "
        "pools. Nothing was changed"
    )
    assert pooled_rolling_update_refusal(8, 40, 359, 20, 200) == (
        "8 replicas plus one during an update may open 360 connections to PgBouncer (40 each), "
        "PGBOUNCER_MAX_CLIENT_CONN is 359: raise it, or lower APP_REPLICAS, WEB_CONCURRENCY or "
        "the DB pools. Nothing was changed"
    )
    assert pooled_rolling_update_refusal(8, 40, 360, 200, 200) == pooler_pool_refusal(200, 200)


@pytest.mark.parametrize(
    ("output", "value"),
    [("100\n", 100), ("250", 250), ("", None), ("error: no db\n", None), (" 100\n", None)],
)
def test_max_connections_as_psql_prints_it(output: str, value: int | None) -> None:
    assert parse_max_connections(output) == value


def test_batches() -> None:
    assert [batch_size(3, retired, 2) for retired in (0, 2)] == [2, 1]
    assert batch_size(1, 0, 1) == 1


# --- The HTTPS check --------------------------------------------------------------


def test_the_https_check_verifies_the_local_ca_on_this_machine() -> None:
    check = https_check(settings(LOCAL_CERTS_DIR="/certs"))
    assert check.origin == "https://stack.localhost:443"
    assert check.url == "https://stack.localhost:443/api/health/ready"
    # BIND_ADDRESS 0.0.0.0 (the example's) is reached on loopback.
    assert check.curl == (
        *("curl", "--silent", "--show-error", "--fail", "--max-time", "5"),
        *("--resolve", "stack.localhost:443:127.0.0.1", "--cacert", "/certs/ca.crt"),
    )
    assert check.note is None


@pytest.mark.parametrize(
    ("values", "tail", "note"),
    [
        ({"HEALTH_CHECK_INSECURE": "true", "HEALTH_CHECK_CA_FILE": "/ca"}, ["--insecure"], None),
        (
            {
                "CERT_RESOLVER": "letsencrypt",
                "ACME_CA_SERVER": "https://acme-staging-v02.api.letsencrypt.org/directory",
            },
            ["--insecure"],
            "Let's Encrypt staging: its certificates are untrusted by design, not verifying",
        ),
        (
            {"CERT_RESOLVER": "letsencrypt", "HEALTH_CHECK_CA_FILE": "/ca"},
            ["--cacert", "/ca"],
            None,
        ),
        ({"CERT_RESOLVER": "letsencrypt"}, [], None),  # the system's trust store
    ],
)
def test_the_https_check_knobs(values: dict[str, str], tail: list[str], note: str | None) -> None:
    check = https_check(settings(**values))
    assert list(check.curl[8:]) == tail
    assert check.note == note


def test_the_https_check_address_and_port() -> None:
    given = settings(
        DOMAIN="example.com",
        HTTPS_PORT="8443",
        BIND_ADDRESS="10.0.0.5",
        CERT_RESOLVER="letsencrypt",
    )
    assert https_check(given).curl[7] == "example.com:8443:10.0.0.5"
    assert public_url(given) == "https://example.com:8443"
    given.environ["HEALTH_CHECK_ADDRESS"] = "192.0.2.7"
    assert https_check(given).curl[7] == "example.com:8443:192.0.2.7"
    assert public_url(settings(DOMAIN="example.com")) == "https://example.com"


# --- What docker says, read -------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "repository"),
    [
        ("app:1", "app"),
        ("app", "app"),
        ("registry:5000/team/app:1", "registry:5000/team/app"),
        ("registry:5000/team/app", "registry:5000/team/app"),
        ("app:1@sha256:abc", "app"),
        ("app@sha256:abc", "app"),
    ],
)
def test_image_repository(reference: str, repository: str) -> None:
    assert image_repository(reference) == repository


@pytest.mark.parametrize(
    ("output", "failed", "ready"),
    [
        ("running 0 healthy\n", None, True),
        ("running 0 \n", None, True),  # no healthcheck: running is ready
        ("running 0 starting\n", None, False),
        ("created 0 \n", None, False),
        ("exited 0 \n", "exited at start (0 restart(s))", False),
        ("dead 0 \n", "exited at start (0 restart(s))", False),
        ("restarting 2 starting\n", "exited at start (2 restart(s))", False),
        ("running 0 unhealthy\n", "is unhealthy (its healthcheck fails)", False),
    ],
)
def test_container_states(output: str, failed: str | None, ready: bool) -> None:
    state = ContainerState.parse(output)
    assert (state.failed, state.ready) == (failed, ready)


# Traefik's JSON access log as `docker logs` prints it (fields trimmed).
ACCESS_LOG = "\n".join(
    [
        'time="2026-01-01T00:00:00Z" level=info msg="Configuration loaded"',
        json.dumps(
            {"RequestPath": "/api/health/ready?probe=p1", "ServiceAddr": "198.18.201.5:8000"}
        ),
        json.dumps(
            {"RequestPath": "/api/health/ready?probe=p1", "ServiceAddr": "198.18.201.6:8000"}
        ),
        json.dumps({"RequestPath": "/api/items/", "ServiceAddr": "198.18.201.7:8000"}),
        '{"RequestPath":"/api/health/ready?probe=p1","ServiceAddr":"198.18.201.10:8000"}',
        json.dumps({"RequestPath": "/api/health/ready?probe=p1", "ServiceAddr": ""}),
    ]
)


def test_the_backends_that_answered_a_probe() -> None:
    seen = routed_addresses(ACCESS_LOG, "probe=p1")
    assert seen == {"198.18.201.5:8000", "198.18.201.6:8000", "198.18.201.10:8000", ""}
    assert is_routed(["198.18.201.5"], seen)
    assert is_routed(["172.17.0.2", "198.18.201.6"], seen)  # on several networks
    assert not is_routed(["198.18.201.7"], seen)  # answered, but not a probe
    assert not is_routed(["198.18.201.1"], seen)  # a prefix of .10 is not .10
    assert not is_routed([], seen)


# --- The zero-downtime deploy, on recorded docker output --------------------------

OLD_IMAGE = "sha256:" + "1" * 64
NEW_IMAGE = "sha256:" + "2" * 64
LABELS = {"traefik.enable": "true", "traefik.http.routers.app.rule": "Host(`x.test`)"}


class Engine:
    """The project's app containers as `docker compose ps` lists them: `--scale`
    adds new ones, `docker rm` removes them; each new one reports `new_state` and
    Traefik's access log names the new ones when `routed`."""

    def __init__(self, old: int = 1, *, new_state: str = "running 0 healthy") -> None:
        self.app = [f"{'a' * 11}{n}{'f' * 52}" for n in range(old)]
        self.old = list(self.app)
        self.new_state = new_state
        self.routed = True
        self.max_connections = "100\n"
        self.migrate_status = "0\n"
        self.labels = dict(LABELS)
        self.started = 0
        self.broken_from = 1  # the first new container that reports new_state

    def address(self, container: str) -> str:
        return f"198.18.201.{10 + self.app.index(container) if container in self.app else 99}"

    def scale(self, args: tuple[str, ...]) -> str:
        wanted = int(next(a for a in args if a.startswith("app=")).removeprefix("app="))
        while len(self.app) < wanted:
            self.started += 1
            self.app.append(f"{'b' * 11}{self.started}{'e' * 52}")
        return ""

    def state(self, args: tuple[str, ...]) -> str:
        container = args[-1]
        if container in self.old or int(container[11]) < self.broken_from:
            return "running 0 healthy\n"
        return self.new_state + "\n"

    def access_log(self, runner: FakeRunner) -> str:
        probe = re.search(r"probe=(\S+)", runner.called("curl")[-1])
        assert probe
        new = [c for c in self.app if c not in self.old]
        return "\n".join(
            json.dumps({"RequestPath": f"/api/health/ready?probe={probe[1]}", "ServiceAddr": a})
            for a in [f"{self.address(c)}:8000" for c in self.old + (new if self.routed else [])]
        )

    def remove(self, args: tuple[str, ...]) -> str:
        self.app.remove(args[-1])
        return ""

    def runner(self, environ: dict[str, str] | None = None) -> FakeRunner:
        config = {"services": {"app": {"image": "fastapi-stack-app:e2e", "labels": LABELS}}}
        runner: FakeRunner
        answers: list[tuple[str, Any]] = [
            ("ps --status running --quiet", "cafe\n"),
            ("config --format json app", json.dumps(config)),
            ("config --services", "traefik\nmigrate\napp\ndb\n"),
            ("ps --all --quiet app", lambda _: "".join(f"{c}\n" for c in self.app)),
            ("ps --all --quiet migrate", "m1grate\n"),
            ("ps --quiet traefik", "7raefik\n"),
            ("inspect --format {{.Image}}", OLD_IMAGE + "\n"),
            ("image inspect --format {{.Id}}", NEW_IMAGE + "\n"),
            ("inspect --format {{.State.Status}}", self.state),
            ("inspect --format {{range .NetworkSettings.Networks}}", lambda a: self.address(a[-1])),
            (
                "docker inspect " + self.old[0],
                lambda _: json.dumps([{"Config": {"Labels": self.labels}}]),
            ),
            ("psql", lambda _: self.max_connections),
            ("docker wait", lambda _: self.migrate_status),
            ("docker logs --tail 3", "Traceback...\nSystemExit: 3\n"),
            ("docker logs --tail 1 m1grate", "alembic: relation exists\n"),
            ("docker logs --since", lambda _: self.access_log(runner)),
            ("--scale app=", self.scale),
            ("docker rm", self.remove),
        ]
        base = {
            "CERT_RESOLVER": "letsencrypt",
            "DOMAIN": "fastapi-stack.test",
            "ACME_CA_SERVER": PEBBLE,
            "ACME_EMAIL": "ops@example.com",
            "HEALTH_CHECK_CA_FILE": "/work/acme-root.pem",
            "APP_REVISION": "e2e-1",
        }
        runner = FakeRunner(answers, base | (environ or {}))
        return runner


def deploy(runner: FakeRunner) -> tuple[str, str]:
    """Deploy through `main`, as scripts/stack.sh runs it: its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    stack = Stack(runner, Console("stack", out, err), Settings(runner.environ, "stack.env"))
    try:
        stack.deploy()
    except Refusal as refusal:
        Console("stack", out, err).error(str(refusal))
    return out.getvalue(), err.getvalue()


def test_a_release_starts_beside_the_old_one_which_is_retired_once_traefik_routes_to_it() -> None:
    engine = Engine(old=1)
    runner = engine.runner()
    out, err = deploy(runner)
    assert err == ""
    (old,) = engine.old
    (new,) = engine.app
    assert new != old
    # Build and tag, the other services, migrate, start beside, wait, retire the old.
    order = [
        "compose --env-file stack.env build app",
        f"docker tag {NEW_IMAGE} fastapi-stack-app:222222222222",
        "up --detach --wait --wait-timeout 180 --no-deps --remove-orphans traefik db",
        "up --detach --no-deps migrate",
        "docker wait m1grate",
        "up --detach --no-deps --no-recreate --scale app=2 app",
        "inspect --format {{.State.Status}} {{.RestartCount}}",
        "docker logs --since 1699999999 7raefik",
        f"docker stop {old}",
        f"docker rm {old}",
        "/api/health/ready",
    ]
    positions = [runner.index(step) for step in order[:-1]]
    assert positions == sorted(positions)
    assert runner.called("/api/health/ready")[-1].endswith(
        "--cacert /work/acme-root.pem https://fastapi-stack.test:443/api/health/ready"
    )
    assert runner.called("probe=deploy-1700000000-4242")
    assert "--resolve fastapi-stack.test:443:127.0.0.1" in runner.called("probe=")[0]
    assert runner.called("docker stop") == [f"docker stop {old}"]
    assert not runner.called(f"docker tag {OLD_IMAGE}")  # nothing to put back
    lines = out.splitlines()
    assert lines[0] == "[stack] building fastapi-stack-app:e2e (revision e2e-1)"
    assert "[stack] release fastapi-stack-app:222222222222; running: 111111111111" in lines
    assert "[stack] starting 1 new app container(s) beside the 1 running" in lines
    assert f"[stack]   stopped and removed {old[:12]}" in lines
    assert lines[-1] == "[stack] deployed 222222222222 on 1 container(s) in 0s, no request dropped"


def test_a_deploy_the_database_cannot_hold_is_refused_before_anything_changes() -> None:
    engine = Engine(old=2)
    runner = engine.runner()
    out, err = deploy(runner)
    assert err.splitlines()[-1] == (
        "[stack] ERROR: a new container beside the 2 running needs 120 database connections "
        "(each may open 40), Postgres allows 100: lower WEB_CONCURRENCY or the DB pools, or raise "
        "max_connections, or deploy with a short interruption (make up). Nothing was changed"
    )
    assert "building" not in out
    assert not runner.called("build")
    assert not runner.called("docker tag")
    assert not runner.called(" up ")
    assert not runner.called("docker stop")


def test_the_budget_counts_the_settings_pools() -> None:
    engine = Engine(old=2)
    runner = engine.runner({"WEB_CONCURRENCY": "1"})  # 20 each: 60 fit in 97
    _, err = deploy(runner)
    assert err == ""
    assert len(runner.called("--scale app=")) == 1  # both at once


POOLER = {"COMPOSE_PROFILES": "pgbouncer", "DB_POOLER_URL": "pgbouncer:6432"}


def test_eight_replicas_the_database_cannot_hold_deploy_through_the_pooler() -> None:
    refused = Engine(old=8)
    refused.max_connections = "50\n"
    _, err = deploy(refused.runner())
    assert "needs 360 database connections" in err.splitlines()[-1]
    engine = Engine(old=8)
    engine.max_connections = "50\n"
    runner = engine.runner(POOLER)
    out, err = deploy(runner)
    assert err == ""
    assert "[stack] starting 8 new app container(s) beside the 8 running" in out.splitlines()
    assert len(runner.called("--scale app=")) == 1  # all at once


def test_a_pooler_pool_postgres_cannot_hold_is_refused_before_anything_changes() -> None:
    engine = Engine(old=1)
    engine.max_connections = "50\n"
    runner = engine.runner(POOLER | {"PGBOUNCER_POOL_SIZE": "48"})
    out, err = deploy(runner)
    assert err.splitlines()[-1] == f"[stack] ERROR: {pooler_pool_refusal(48, 50)}"
    assert "building" not in out
    assert not runner.called(" up ")


def test_an_unreadable_max_connections_is_taken_as_postgres_default() -> None:
    engine = Engine(old=1)
    engine.max_connections = "psql: error: connection refused\n"
    _, err = deploy(engine.runner())
    assert err == (
        "[stack] warning: could not read Postgres' max_connections, assuming its default (100)\n"
    )


@pytest.mark.parametrize(
    ("new_state", "reason"),
    [
        (
            "exited 0 ",
            "exited at start (0 restart(s)); its last lines: Traceback... SystemExit: 3 ",
        ),
        ("restarting 1 ", "exited at start (1 restart(s))"),
        ("running 0 unhealthy", "is unhealthy (its healthcheck fails)"),
        ("running 0 starting", "not healthy within 20s (WAIT_TIMEOUT)"),
    ],
)
def test_a_broken_release_is_removed_and_the_old_one_serves_on(new_state: str, reason: str) -> None:
    engine = Engine(old=1, new_state=new_state)
    runner = engine.runner({"WAIT_TIMEOUT": "20"})
    out, err = deploy(runner)
    assert engine.app == engine.old
    new = "bbbbbbbbbbb1"
    assert runner.called("docker stop") == [f"docker stop {new}{'e' * 52}"]
    # The tag names the running release again.
    assert runner.called(f"docker tag {OLD_IMAGE} fastapi-stack-app:e2e")
    last = err.splitlines()[-1]
    assert last.startswith(
        "[stack] ERROR: deploy failed, release 222222222222 removed, 111111111111 still serving: "
        "container"
    )
    assert reason in last
    assert "[stack] removing its container(s) that failed" in out
    if "within" in reason:
        assert runner.time >= 20  # it waited WAIT_TIMEOUT, no longer
        assert runner.time < 22
    else:
        assert runner.time == 0  # it stopped waiting at once


def test_a_release_traefik_never_routes_to_is_removed() -> None:
    engine = Engine(old=1)
    engine.routed = False
    runner = engine.runner({"WAIT_TIMEOUT": "5"})
    _, err = deploy(runner)
    assert err.splitlines()[-1].endswith(
        "still serving: Traefik sent no request to bbbbbbbbbbb1 within 5s (WAIT_TIMEOUT)"
    )
    assert engine.app == engine.old
    # Three probes per new container, every second.
    assert len(runner.called("probe=")) == 3 * 6


def test_a_failure_half_way_says_what_serves() -> None:
    engine = Engine(old=2, new_state="exited 0 ")
    engine.broken_from = 2  # the first batch serves, the second exits
    engine.max_connections = "123\n"  # one new beside two
    runner = engine.runner()
    _, err = deploy(runner)
    assert err.splitlines()[-1].startswith(
        "[stack] ERROR: deploy stopped half-way: 1 new and 1 old container(s) serve; "
        "make deploy again: container bbbbbbbbbbb2 exited at start"
    )
    assert not runner.called(f"docker tag {OLD_IMAGE}")  # the new release serves too


def test_batches_of_the_surge_retire_as_many_old_ones_each() -> None:
    engine = Engine(old=3)
    runner = engine.runner({"WEB_CONCURRENCY": "1"})  # 20 each: (97 / 20) - 3 = 1 at a time
    out, err = deploy(runner)
    assert err == ""
    assert len(runner.called("--scale app=4")) == 3
    assert [call.split()[-1] for call in runner.called("docker stop")][::2] == engine.old[::2]
    assert len(engine.app) == 3
    assert not set(engine.app) & set(engine.old)
    assert out.splitlines()[-1].startswith("[stack] deployed 222222222222 on 3 container(s)")


def test_failed_migrations_leave_the_running_release_serving() -> None:
    engine = Engine(old=1)
    engine.migrate_status = "1\n"
    runner = engine.runner()
    _, err = deploy(runner)
    assert err.splitlines()[-1] == (
        "[stack] ERROR: migrations did not run, the running release serves on: "
        "alembic: relation exists"
    )
    assert runner.called(f"docker tag {OLD_IMAGE} fastapi-stack-app:e2e")
    assert not runner.called("--scale")


def test_changed_routing_labels_recreate_the_stack() -> None:
    engine = Engine(old=1)
    engine.labels = {**LABELS, "traefik.http.routers.app.rule": "Host(`other.test`)"}
    runner = engine.runner()
    out, _ = deploy(runner)
    assert "[stack] the app's Traefik labels change (DOMAIN, CERT_RESOLVER...): recreating" in out
    assert runner.called("up --detach --build --wait --wait-timeout 180 --remove-orphans")
    assert not runner.called("--scale")


def test_nothing_serving_starts_the_whole_stack() -> None:
    engine = Engine(old=1)
    runner = engine.runner()
    runner.answers.insert(0, ("ps --status running --quiet traefik", ""))
    out, _err = deploy(runner)
    assert out.startswith("[stack] no release serving: starting the whole stack\n")
    assert runner.called("up --detach --build --wait")
    assert out.splitlines()[-1] == "[stack] ready: https://fastapi-stack.test/docs"


def test_the_refusals_run_before_anything_starts() -> None:
    engine = Engine(old=1)
    runner = engine.runner({"COMPOSE_PROFILES": "mail-catcher", "ENVIRONMENT": "production"})
    _, err = deploy(runner)
    assert "the mail catcher (COMPOSE_PROFILES=mail-catcher) is for development" in err
    assert not runner.called("build")


# --- up, and the HTTPS wait -------------------------------------------------------


def stack_of(runner: FakeRunner) -> tuple[Stack, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Stack(runner, Console("stack", out, err), Settings(runner.environ, "e")), out, err


def test_up_says_why_migrations_did_not_run() -> None:
    runner = FakeRunner(
        [
            ("up --detach --build", Result(1)),
            ("--format {{.Service}} {{.ExitCode}} migrate", "migrate 1\n"),
            ("logs --no-log-prefix --tail=1 migrate", "password authentication failed\n"),
        ],
        {"CERT_RESOLVER": "letsencrypt", "DOMAIN": "example.com", "ACME_EMAIL": "a@b.c"},
    )
    stack, _, _ = stack_of(runner)
    with pytest.raises(Refusal, match=r"^migrations did not run: password authentication failed$"):
        stack.up()
    runner.answers[1] = ("--format {{.Service}} {{.ExitCode}} migrate", "migrate 0\n")
    with pytest.raises(Refusal, match=r"^the stack did not become healthy \(see above"):
        stack.up()


def test_without_buildx_up_explains_compose_s_warning() -> None:
    runner = FakeRunner(
        [("buildx version", Result(1))],
        {"CERT_RESOLVER": "letsencrypt", "DOMAIN": "example.com", "ACME_EMAIL": "a@b.c"},
    )
    stack, out, _ = stack_of(runner)
    stack.up()
    assert "[stack] docker buildx is not installed: compose builds with its own builder" in (
        out.getvalue()
    )
    assert "COMPOSE_BAKE" not in out.getvalue()


def test_the_https_wait_gives_up_after_wait_timeout_with_curl_s_reason() -> None:
    runner = FakeRunner(
        [("curl", Result(60, "curl: (60) SSL certificate problem\n"))],
        {"CERT_RESOLVER": "letsencrypt", "DOMAIN": "example.com", "WAIT_TIMEOUT": "3"},
    )
    stack, out, _ = stack_of(runner)
    with pytest.raises(Refusal) as refused:
        stack.wait_for_https()
    assert str(refused.value) == (
        "https://example.com:443/api/health/ready did not answer healthy over verified HTTPS: "
        "curl: (60) SSL certificate problem"
    )
    assert len(runner.called("curl")) == 4  # at 0, 1, 2 and 3 s
    assert runner.called("logs --tail=30 traefik app")
    assert "(verified HTTPS through Traefik, up to 3s)" in out.getvalue()


# --- The entry point --------------------------------------------------------------


def test_main_prints_refusals_and_keeps_a_failed_command_s_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refused(*_: Any) -> None:
        raise Refusal("no")

    def failed(*_: Any) -> None:
        raise CommandFailed(("docker", "build"), 17)

    runner = FakeRunner([])
    assert main(["x"], refused, prefix="deploy", runner=runner) == 1
    assert capsys.readouterr().err == "[deploy] ERROR: no\n"
    assert main(["x"], failed, runner=runner) == 17
    assert main(["bogus"], runner=runner) == 1
    assert capsys.readouterr().err == (
        "[stack] ERROR: usage: scripts/stack.sh up|deploy|migrate|superuser|backup|restore FILE"
        "|local-certs|trust-ca [FILE]\n"
    )
    assert main(["--help"]) == 0
    assert "deploy          up, or a new release beside" in capsys.readouterr().out


def test_restore_needs_an_existing_file(capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner([])
    assert main(["restore", "/nonexistent.dump"], runner=runner) == 1
    assert (
        capsys.readouterr().err == "[stack] ERROR: usage: make restore FILE=backups/<file>.dump\n"
    )
    assert runner.calls == []


def test_trust_ca_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner([], {"HOME": str(tmp_path)}, tools=())
    assert main(["trust-ca", str(tmp_path / "none.crt")], runner=runner) == 1
    assert f"[stack] ERROR: {tmp_path}/none.crt does not exist: make up creates it" in (
        capsys.readouterr().err
    )
    ca = tmp_path / "ca.crt"
    ca.write_text("PEM")
    assert main(["trust-ca", str(ca)], runner=runner) == 1
    assert "certutil is missing: sudo apt-get install libnss3-tools" in capsys.readouterr().err
    runner = FakeRunner([("-L", Result(255))], {"HOME": str(tmp_path)})
    assert main(["trust-ca", str(ca)], runner=runner) == 0
    assert [call.split()[3] for call in runner.calls] == ["-L", "-N", "-A"]
    assert (tmp_path / ".pki" / "nssdb").is_dir()


def test_backup_writes_a_private_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text("POSTGRES_PW='`b{5:P3k'\nPOSTGRES_USER='app'\n")
    runner = FakeRunner(
        [("pg_dump", "PGDMP..."), ("du -h", "4.0K\tfile\n"), ("ps --status running", "db1\n")],
        {"ENV_FILE": str(env_file), "BACKUP_DIR": str(tmp_path / "backups"), "APP_REVISION": "x"},
    )
    assert main(["backup"], runner=runner) == 0
    (dump,) = (tmp_path / "backups").iterdir()
    assert dump.read_text() == "PGDMP..."
    assert dump.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700
    assert capsys.readouterr().out == f"[stack] wrote {dump} (4.0K)\n"
    (pg_dump,) = runner.called("pg_dump")
    assert "`b{5" not in pg_dump  # the password goes through the environment


def external_env_file(tmp_path: Path, **values: str) -> Path:
    ca = tmp_path / "provider-ca.pem"
    ca.write_text("PEM")
    settings = {
        "COMPOSE_FILE": "compose.yaml:compose.external-db.yaml",
        "POSTGRES_URL": "mydb.example.com:6543",
        "POSTGRES_PW": "`b{5:P3k",
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(ca),
        **values,
    }
    env_file = tmp_path / "stack.env"
    env_file.write_text("".join(f"{name}='{value}'\n" for name, value in settings.items()))
    return env_file


def test_backup_of_a_managed_database_runs_pg_dump_in_the_db_client(tmp_path: Path) -> None:
    env_file = external_env_file(tmp_path)
    runner = FakeRunner(
        [("pg_dump", "PGDMP..."), ("du -h", "4.0K\tfile\n")],
        {"ENV_FILE": str(env_file), "BACKUP_DIR": str(tmp_path / "backups"), "APP_REVISION": "x"},
    )
    assert main(["backup"], runner=runner) == 0
    (pg_dump,) = runner.called("pg_dump")
    assert "run --rm --no-deps -T" in pg_dump
    assert "db-client pg_dump --format=custom --no-owner --dbname app" in pg_dump
    assert "-e PGSSLMODE -e PGCONNECT_TIMEOUT -e PGSSLROOTCERT" in pg_dump
    assert "`b{5" not in pg_dump  # the password goes through the environment
    assert not runner.called("ps --status running")  # no db service to look for


def test_the_db_client_connects_as_the_app_does() -> None:
    settings = Settings(
        {
            "POSTGRES_URL": "[2001:db8::5]:6543",
            "POSTGRES_PW": "pw",
            "POSTGRES_SSLMODE": "verify-full",
        }
    )
    assert database_client_environment(settings, "/run/postgres-ca/root.crt") == {
        "PGHOST": "2001:db8::5",
        "PGPORT": "6543",
        "PGUSER": "app",
        "PGDATABASE": "app",
        "PGPASSWORD": "pw",
        "PGSSLMODE": "verify-full",
        "PGCONNECT_TIMEOUT": "2",
        "PGSSLROOTCERT": "/run/postgres-ca/root.crt",
    }


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"POSTGRES_URL": "db:5432"}, "POSTGRES_URL must be your database's host:port"),
        ({"POSTGRES_SSLROOTCERT": "/nonexistent.pem"}, "set it to your database provider's CA"),
        ({"POSTGRES_SSLROOTCERT": "system"}, "the host's bundle"),
    ],
)
def test_external_database_mode_refuses_what_compose_cannot_run(
    tmp_path: Path, values: dict[str, str], refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = external_env_file(tmp_path, **values)
    runner = FakeRunner([], {"ENV_FILE": str(env_file), "APP_REVISION": "x"})
    assert main(["backup"], runner=runner) == 1
    assert refusal in capsys.readouterr().err


def test_the_stacks_pgbouncer_is_refused_with_a_managed_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = external_env_file(
        tmp_path, COMPOSE_PROFILES="pgbouncer", DB_POOLER_URL="pgbouncer:6432"
    )
    runner = FakeRunner([], {"ENV_FILE": str(env_file), "APP_REVISION": "x"})
    assert main(["up"], runner=runner) == 1
    assert "with compose.external-db.yaml use your provider's pooler" in capsys.readouterr().err
    assert not runner.called(" up ")
