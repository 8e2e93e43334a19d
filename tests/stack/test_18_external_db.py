"""External-DB mode: the stack without its db container, on a managed Postgres.

The "managed database" is a TLS-only Postgres (hostssl only, a certificate for
db.example.test from a CA made here) in a container on a network of its own,
outside the stack's; compose.external-db.yaml's `database` network is that
network (tests/stack/compose.external-db.test.yaml), as a provider's network
peered with the stack's would be. The stack is deployed with the production
deploy script, then: no db container, the API through Traefik over HTTPS, a
backup and a restore over verified TLS, and a wrong CA or host name refused by
the migrations in one line.

Its own compose project and ports, so it runs beside the session's stack.
"""

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.database.tls_postgres import issue_server_certificate, make_ca
from tests.stack.conftest import (
    ARTIFACTS,
    DOMAIN,
    EXAMPLE_DB_PASSWORD,
    PASSWORD,
    REPO,
    Stack,
    env_file_text,
    fetch_pebble_root,
    production_secrets,
    run,
    timed,
)

PROJECT = "fastapi-stack-e2e-extdb"
COMPOSE_FILES = (
    "compose.yaml:compose.external-db.yaml:tests/stack/compose.test.yaml"
    ":tests/stack/compose.external-db.test.yaml"
)
MANAGED_NETWORK = "fastapi-stack-e2e-managed-db"
MANAGED_SUBNET = "198.18.240.0/24"
MANAGED_CONTAINER = "fastapi-stack-e2e-managed-db"
MANAGED_NAME = "db.example.test"
# Debian's PostgreSQL with TLS (the postgres stand-in has none): the managed
# server, and the stack's db-client (POSTGRES_IMAGE) for pg_dump and pg_restore.
TLS_POSTGRES_IMAGE = "fastapi-stack-test/postgres-tls:17"
HTTPS_PORT = "9443"


def build_tls_postgres_image() -> None:
    if run(["docker", "image", "inspect", TLS_POSTGRES_IMAGE], check=False).returncode == 0:
        return
    run(
        [
            *("docker", "build", "-q", "-t", TLS_POSTGRES_IMAGE),
            *("-f", "tests/stack/standins/postgres-tls/Dockerfile", "tests/stack/standins"),
        ],
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        timeout=900,
    )


def remove_managed_database() -> None:
    run(["docker", "rm", "--force", "--volumes", MANAGED_CONTAINER], check=False)
    run(["docker", "network", "rm", MANAGED_NETWORK], check=False)


def start_managed_database(workdir: Path) -> Path:
    """The TLS-only Postgres, ready; returns the CA file that signed its certificate."""
    tls = workdir / "managed-tls"
    tls.mkdir()
    ca = make_ca("managed database test CA")
    ca_file = ca.write(tls / "ca.pem")
    make_ca("some other CA").write(workdir / "other-ca.pem")
    issue_server_certificate(ca, MANAGED_NAME, tls / "server.crt", tls / "server.key")
    for path in (tls, *tls.iterdir()):  # the init script copies the key as postgres
        path.chmod(0o755 if path.is_dir() else 0o644)
    run(["docker", "network", "create", "--subnet", MANAGED_SUBNET, MANAGED_NETWORK])
    run(
        [
            *("docker", "run", "--detach", "--name", MANAGED_CONTAINER),
            *("--network", MANAGED_NETWORK, "--network-alias", MANAGED_NAME),
            *("-e", "POSTGRES_USER=app", "-e", "POSTGRES_DB=app"),
            *("-e", "POSTGRES_PASSWORD"),
            *("-v", f"{tls}:/tls:ro"),
            *("-v", f"{REPO}/tests/stack/managed-db-tls.sh:/docker-entrypoint-initdb.d/tls.sh:ro"),
            TLS_POSTGRES_IMAGE,
        ],
        env={**os.environ, "POSTGRES_PASSWORD": EXAMPLE_DB_PASSWORD},
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready = run(
            ["docker", "exec", MANAGED_CONTAINER, "pg_isready", "-h", "127.0.0.1", "-U", "app"],
            check=False,
        )
        if ready.returncode == 0:
            return ca_file
        time.sleep(1)
    logs = run(["docker", "logs", MANAGED_CONTAINER], check=False)
    pytest.fail(f"the managed database did not start:\n{logs.stdout}\n{logs.stderr}")


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if run(["docker", "info"], check=False).returncode != 0:
        pytest.fail("no Docker engine answers (tests/stack/offline/docker-engine.sh starts one)")
    workdir = tmp_path_factory.mktemp("external-db")
    workdir.chmod(0o755)
    settings = {
        **production_secrets(),
        "POSTGRES_URL": f"{MANAGED_NAME}:5432",
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(workdir / "managed-tls" / "ca.pem"),
        "POSTGRES_IMAGE": TLS_POSTGRES_IMAGE,
        "DOMAIN": DOMAIN,
        "CERT_RESOLVER": "letsencrypt",
        "ACME_EMAIL": "ops@example.com",
        "ACME_CA_SERVER": "https://pebble:14000/dir",
        "BIND_ADDRESS": "127.0.0.1",
        "HTTP_PORT": "9080",
        "HTTPS_PORT": HTTPS_PORT,
        "PROXY_NETWORK": f"{PROJECT}-proxy",
        "PROXY_SUBNET": "198.18.202.0/24",
        "APP_IMAGE": "fastapi-stack-app:e2e",
        "WEB_CONCURRENCY": "1",
        "LOCAL_CERTS_DIR": str(workdir / "certs"),
        "ENV_FILE": str(workdir / "stack.env"),
        "COMPOSE_FILE": COMPOSE_FILES,
    }
    stack = Stack(workdir=workdir, settings=settings, domain=f"{DOMAIN}:{HTTPS_PORT}")
    stack.env_file.write_text(env_file_text(settings))
    stack.env = {
        **os.environ,
        "COMPOSE_FILE": COMPOSE_FILES,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "ENV_FILE": str(stack.env_file),
        "TEST_MANAGED_DB_NETWORK": MANAGED_NETWORK,
        "BACKUP_DIR": str(workdir / "backups"),
    }
    stack.compose("--profile", "*", "down", "--volumes", "--remove-orphans", check=False)
    remove_managed_database()
    try:
        started = time.monotonic()
        build_tls_postgres_image()
        start_managed_database(workdir)
        timed("external DB: TLS-only Postgres up (its image built if missing)", started)
        started = time.monotonic()
        stack.compose("up", "--detach", "pebble")
        stack.root_ca = fetch_pebble_root(stack)
        stack.env["HEALTH_CHECK_CA_FILE"] = str(stack.root_ca)
        stack.env["TEST_ACME_ROOT"] = str(stack.root_ca)
        result = stack.deploy()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "external-db-deploy.log").write_text(result.stdout + result.stderr)
        timed("external DB: scripts/deploy.sh to healthy over HTTPS", started)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps", check=False, timeout=60)
        (ARTIFACTS / "external-db-compose.log").write_text(logs.stdout + logs.stderr)
        if os.environ.get("STACK_KEEP") != "1":
            stack.compose(
                "--profile", "*", "down", "--volumes", "--remove-orphans", check=False, timeout=180
            )
            remove_managed_database()


def test_the_stack_runs_without_a_db_container(external: Stack) -> None:
    services = external.compose("ps", "--all", "--format", "{{.Service}}").stdout.split()
    assert "app" in services
    assert "db" not in services
    volumes = run(["docker", "volume", "ls", "--quiet"]).stdout.split()
    assert f"{PROJECT}_pgdata" not in volumes


def test_the_app_connects_to_the_managed_database_over_tls(external: Stack) -> None:
    """Seen from the server: migrated, and every network client on TLS."""

    def query(sql: str) -> str:
        return run(
            [*("docker", "exec", MANAGED_CONTAINER, "psql", "-U", "app", "-d", "app", "-Atc", sql)]
        ).stdout.strip()

    assert query("SELECT count(*) FROM alembic_version") == "1"
    clients = "FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE client_addr IS NOT NULL"
    assert int(query(f"SELECT count(*) {clients}")) > 0
    assert query(f"SELECT bool_and(ssl) {clients}") == "t"


def api_flow(stack: Stack) -> tuple[dict[str, str], int]:
    """Register, log in, create/read/update an item, refresh: through Traefik."""
    email = f"extdb-{uuid.uuid4().hex[:12]}@example.com"
    with stack.client() as client:
        registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        login = client.post("/api/token/", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        tokens = login.json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        created = client.post("/api/items/", json={"name": "Lamp", "price": 10}, headers=auth)
        assert created.status_code == 201, created.text
        item_id = created.json()["id"]
        updated = client.patch(f"/api/items/{item_id}", json={"price": 12}, headers=auth)
        assert updated.status_code == 200, updated.text
        assert client.get(f"/api/items/{item_id}", headers=auth).json()["price"] == 12
        refreshed = client.post(
            "/api/token/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        auth = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        listed = client.get("/api/items/", headers=auth)
        assert item_id in [item["id"] for item in listed.json()["items"]]
    return auth, item_id


def test_the_api_flow_through_traefik_over_https(external: Stack) -> None:
    api_flow(external)


def test_backup_and_restore_against_the_managed_database(external: Stack) -> None:
    auth, item_id = api_flow(external)
    backup = run(["scripts/stack.sh", "backup"], env=external.env)
    dumps = sorted((external.workdir / "backups").glob("*.dump"))
    assert dumps, backup.stdout + backup.stderr
    with external.client() as client:
        assert client.delete(f"/api/items/{item_id}", headers=auth).status_code in (200, 204)
        assert client.get(f"/api/items/{item_id}", headers=auth).status_code == 404
    run(["scripts/stack.sh", "restore", str(dumps[-1])], env=external.env)
    with external.client() as client:
        restored = client.get(f"/api/items/{item_id}", headers=auth)
    assert restored.status_code == 200, restored.text
    assert restored.json()["price"] == 12
    # No db container ran them: the one-off db-client did, and is gone.
    assert "db" not in external.compose("ps", "--all", "--format", "{{.Service}}").stdout.split()


def migrate_with(stack: Stack, *options: str) -> Any:
    return stack.compose("run", "--rm", "--no-deps", *options, "migrate", check=False)


def test_a_wrong_ca_stops_the_migrations_with_one_clear_line(external: Stack) -> None:
    other = external.workdir / "other-ca.pem"
    refused = migrate_with(
        external,
        *("-v", f"{other}:/run/other-ca.pem:ro", "-e", "POSTGRES_SSLROOTCERT=/run/other-ca.pem"),
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "Traceback" not in output
    assert "not signed by the CA in POSTGRES_SSLROOTCERT" in output


def test_a_wrong_host_name_stops_the_migrations_with_one_clear_line(external: Stack) -> None:
    """The same server by its address: the certificate names db.example.test only."""
    address = run(
        [
            *("docker", "inspect", "--format"),
            f'{{{{(index .NetworkSettings.Networks "{MANAGED_NETWORK}").IPAddress}}}}',
            MANAGED_CONTAINER,
        ]
    ).stdout.strip()
    refused = migrate_with(external, "-e", f"POSTGRES_URL={address}:5432")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "Traceback" not in output
    assert "certificate is for another host name" in output
    assert f'does not match host name "{address}"' in output
