"""The compose stack's day-to-day tasks, run by scripts/stack.sh (the Makefile's entry):

    up              certificates if local, build, start, wait, print the URL
    deploy          up, or a new release beside the running one, then the old retired
    migrate         alembic upgrade head (stack running: in it; else locally)
    superuser       create FIRST_SUPERUSER_* if missing (idempotent)
    backup          pg_dump -Fc to $BACKUP_DIR/<UTC time>.dump (default backups/)
    restore FILE    pg_restore FILE over the stack's database
    local-certs     (re)make the local CA and DOMAIN's certificate
    trust-ca [FILE] trust the local CA (or FILE) in Chromium's NSS database

ENV_FILE (default .env) is the settings file; compose reads the same one. `up`
waits (WAIT_TIMEOUT, 180 s) for healthy containers, then for a healthy answer over
verified HTTPS; HEALTH_CHECK_CA_FILE, HEALTH_CHECK_INSECURE=true and
HEALTH_CHECK_ADDRESS adjust that check (see https_check).

The decisions (which settings are refused, the connection budgets, what a
container's state means, what Traefik's access log says) are pure functions; the
commands they act on go through scripts.runner, which the unit tests fake.
Standard library only: it runs on the deploy host.
"""

import io
import json
import os
import re
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from scripts.env_example import example_settings
from scripts.runner import CommandFailed, Result, Runner

ROOT = Path(__file__).resolve().parent.parent
USAGE = (
    "usage: scripts/stack.sh up|deploy|migrate|superuser|backup|restore FILE|local-certs"
    "|trust-ca [FILE]"
)
DEFAULT_WAIT_TIMEOUT = 180
CA_NICKNAME = "fastapi-stack-local-ca"
# Traefik's docker provider applies a container's exit within 2 s: a replica
# stopped before that can be put back in rotation while it drains (docs/operations.md,
# "What the stack guarantees").
PROVIDER_SETTLE_SECONDS = 3
# Connections kept free for migrations and psql, whatever the app's pools hold.
RESERVED_CONNECTIONS = 3
# What the deploy assumes when Postgres does not say (its default).
DEFAULT_MAX_CONNECTIONS = 100
# The compose profile of PgBouncer, and the address the app then reaches it at.
POOLER_PROFILE = "pgbouncer"
POOLER_SERVICE_URL = "pgbouncer:6432"
# The override that replaces the stack's db service with a managed database, and
# where it mounts the database's CA file in the containers.
EXTERNAL_DB_FILE = "compose.external-db.yaml"
CONTAINER_DB_CA_FILE = "/run/postgres-ca/root.crt"
# Public ACME CAs validate public names only; these never are.
LOCAL_SUFFIXES = (".localhost", ".local", ".test", ".internal", ".lan")


class Refusal(Exception):
    """Why the script stops: printed as `[prefix] ERROR: message`, exit status 1."""


class Console:
    """`[prefix] message` lines: progress on stdout, errors on stderr."""

    def __init__(self, prefix: str, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.prefix = prefix
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def log(self, message: str, *, stderr: bool = False) -> None:
        print(f"[{self.prefix}] {message}", file=self.err if stderr else self.out, flush=True)

    def error(self, message: str) -> None:
        print(f"[{self.prefix}] ERROR: {message}", file=self.err, flush=True)


# --- Settings -------------------------------------------------------------------


@cache
def example_defaults() -> dict[str, str]:
    """Each setting's value in .env.example: what a missing or empty one means."""
    return {setting.name: setting.value for setting in example_settings()}


def parse_env_file(text: str) -> dict[str, str]:
    """`NAME='value'` lines (as scripts/init_env.py and scripts/deploy_env.py write
    them, and as `source` reads them: quotes removed, comments and blanks skipped)."""
    values = {}
    for line in text.splitlines():
        found = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if found:
            words = shell_words(found[2])
            values[found[1]] = words[0] if words else ""
    return values


def shell_words(text: str) -> list[str]:
    """The words of `text` with their quotes removed, up to a comment: a `#` that
    starts a word (in `a#b` it does not, as in the shell)."""
    stream = io.StringIO(text)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    while not text[stream.tell() :].lstrip().startswith("#"):
        word = lexer.get_token()
        if word is None:
            break
        words.append(word)
    return words


class Settings:
    """The environment after loading the settings file; a setting that is unset or
    empty reads as its .env.example default (as `${NAME:-default}` did)."""

    def __init__(
        self,
        environ: MutableMapping[str, str],
        env_file: str = ".env",
        defaults: Mapping[str, str] | None = None,
    ) -> None:
        self.environ = environ
        self.env_file = env_file
        self.defaults = example_defaults() if defaults is None else defaults

    def __getitem__(self, name: str) -> str:
        return self.environ.get(name) or self.defaults.get(name, "")

    def get(self, name: str, default: str = "") -> str:
        """A knob that is no setting of the stack (WAIT_TIMEOUT, HEALTH_CHECK_*...)."""
        return self.environ.get(name) or default

    def number(self, name: str, default: int | None = None) -> int:
        value = self.get(name, str(default)) if default is not None else self[name]
        if not re.fullmatch(r"[0-9]+", value):
            raise Refusal(f"{name} must be a whole number, not '{value}'")
        return int(value)

    @property
    def wait_timeout(self) -> int:
        return self.number("WAIT_TIMEOUT", DEFAULT_WAIT_TIMEOUT)

    @property
    def local_ca(self) -> Path:
        return Path(self["LOCAL_CERTS_DIR"]) / "ca.crt"


def load_env(runner: Runner, environ: MutableMapping[str, str]) -> Settings:
    """Read ENV_FILE into `environ` (what every command then sees); the first use
    of .env writes it with random secrets (`make .env`)."""
    env_file = environ.get("ENV_FILE") or ".env"
    environ["ENV_FILE"] = env_file
    if not Path(env_file).is_file():
        if env_file != ".env":
            raise Refusal(f"{env_file} not found")
        runner.run(sys.executable, "scripts/init_env.py", capture=False)
    environ.update(parse_env_file(Path(env_file).read_text()))
    if not environ.get("APP_REVISION"):
        # The image's org.opencontainers.image.revision label (Dockerfile).
        described = runner.run(
            "git", "describe", "--always", "--dirty", "--abbrev=12", check=False, quiet=True
        )
        environ["APP_REVISION"] = described.stdout.strip() if described.ok else "unknown"
    return Settings(environ, env_file)


def check_settings(settings: Settings) -> list[str]:
    """Refuse settings that would start a broken or unsafe stack; the warnings."""
    warnings = []
    resolver, domain = settings["CERT_RESOLVER"], settings["DOMAIN"]
    if resolver == "letsencrypt":
        # Let's Encrypt validates public names only (a private ACME CA may not).
        if "api.letsencrypt.org" in settings["ACME_CA_SERVER"] and (
            domain == "localhost" or domain.endswith(LOCAL_SUFFIXES)
        ):
            raise Refusal(
                f"Let's Encrypt cannot validate {domain} (not a public name); "
                "set CERT_RESOLVER='' for the local certificate"
            )
        if not settings.environ.get("ACME_EMAIL"):
            warnings.append(
                "warning: ACME_EMAIL is empty: the CA cannot reach you about your certificates"
            )
    elif resolver:
        raise Refusal(
            f"CERT_RESOLVER must be '' (local certificate) or 'letsencrypt', not '{resolver}'"
        )
    profiles = settings.environ.get("COMPOSE_PROFILES", "").split(",")
    if "mail-catcher" in profiles and settings["ENVIRONMENT"] == "production":
        raise Refusal(
            "the mail catcher (COMPOSE_PROFILES=mail-catcher) is for development: it would "
            f"swallow every mail and show them at https://mail.{domain}. Remove it from "
            "COMPOSE_PROFILES and set SMTP_HOST to your provider (docs/mail.md, Setting up SMTP)"
        )
    pooler_refusal = pooler_settings_refusal(settings)
    if pooler_refusal:
        raise Refusal(pooler_refusal)
    if "metrics" in profiles and not settings["PROMETHEUS_USERS"]:
        raise Refusal(
            "COMPOSE_PROFILES=metrics needs PROMETHEUS_USERS, who may open "
            f"https://metrics.{domain} (htpasswd -nbB admin 'a-password')"
        )
    if settings["TRAEFIK_DASHBOARD"] == "true" and not settings["TRAEFIK_DASHBOARD_USERS"]:
        raise Refusal(
            "TRAEFIK_DASHBOARD=true needs TRAEFIK_DASHBOARD_USERS "
            "(htpasswd -nbB admin 'a-password')"
        )
    return warnings


def pooler_in_use(settings: Settings) -> bool:
    """The compose profile `pgbouncer` runs PgBouncer between the app and Postgres."""
    return POOLER_PROFILE in settings.environ.get("COMPOSE_PROFILES", "").split(",")


def pooler_settings_refusal(settings: Settings) -> str | None:
    """The profile and the app's DB_POOLER_URL go together: PgBouncer with the app
    beside it counts nothing, and an app pointed at a service that does not run
    never turns ready."""
    pooler_url = settings["DB_POOLER_URL"]
    if pooler_in_use(settings) and not pooler_url:
        return (
            f"COMPOSE_PROFILES has '{POOLER_PROFILE}' but DB_POOLER_URL is empty: the app "
            f"would bypass PgBouncer. Set DB_POOLER_URL='{POOLER_SERVICE_URL}'"
        )
    if not pooler_in_use(settings) and pooler_url.split(":")[0] == POOLER_PROFILE:
        return (
            f"DB_POOLER_URL is '{pooler_url}' but COMPOSE_PROFILES has no '{POOLER_PROFILE}': "
            f"add it (COMPOSE_PROFILES='{POOLER_PROFILE}'), or empty DB_POOLER_URL"
        )
    return None


EXTERNAL_DATABASE_POOLER = (
    f"the '{POOLER_PROFILE}' profile pools the stack's own db service; with "
    f"{EXTERNAL_DB_FILE} use your provider's pooler: DB_POOLER_URL='its host:port' "
    f"(TLS as POSTGRES_SSLMODE says) and no '{POOLER_PROFILE}' in COMPOSE_PROFILES"
)


# --- The database: the stack's own, or a managed one ---------------------------


def uses_external_database(compose_files: str) -> bool:
    """The compose files (COMPOSE_FILE, or the swarm's) include
    compose.external-db.yaml: no db service, the database is POSTGRES_URL
    (docs/deploy.md, "A managed database")."""
    files = compose_files.replace(",", ":").split(":")
    return any(Path(file).name == EXTERNAL_DB_FILE for file in files)


def split_database_address(address: str) -> tuple[str, str]:
    """POSTGRES_URL's `host`, `host:port` or `[v6]:port` → (host, port)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    elif address.count(":") == 1:
        host, port = address.split(":")
    else:
        host, port = address, ""
    return host, port or "5432"


def check_external_database(settings: Settings) -> None:
    host, _ = split_database_address(settings["POSTGRES_URL"])
    if host in ("", "db", "localhost", "127.0.0.1", "::1"):
        raise Refusal(
            f"{EXTERNAL_DB_FILE} is in COMPOSE_FILE, so POSTGRES_URL must be your database's "
            f"host:port, not '{settings['POSTGRES_URL']}'"
        )
    root_cert = settings["POSTGRES_SSLROOTCERT"]
    if not root_cert or not Path(root_cert).is_file():
        raise Refusal(
            f"{EXTERNAL_DB_FILE} mounts POSTGRES_SSLROOTCERT into the containers: set it to "
            "your database provider's CA file on this host (for a public CA, the host's "
            f"bundle, e.g. /etc/ssl/certs/ca-certificates.crt), not '{root_cert}'"
        )


def database_client_environment(settings: Settings, root_cert: str) -> dict[str, str]:
    """What libpq's tools (pg_dump, pg_restore, psql) read to reach the database
    the app uses, TLS as the app's: `root_cert` is the CA file where they run.
    Passed through the environment, so the password is on no command line."""
    host, port = split_database_address(settings["POSTGRES_URL"])
    environment = {
        "PGHOST": host,
        "PGPORT": port,
        "PGUSER": settings["POSTGRES_USER"],
        "PGDATABASE": settings["POSTGRES_DB"],
        "PGPASSWORD": settings.environ.get("POSTGRES_PW", ""),
        "PGSSLMODE": settings["POSTGRES_SSLMODE"],
        "PGCONNECT_TIMEOUT": settings["DB_CONNECT_TIMEOUT"],
    }
    if root_cert:
        environment["PGSSLROOTCERT"] = root_cert
    return environment


def libpq_command(settings: Settings, *args: str) -> tuple[str, ...]:
    """A libpq tool's command for the app's database (pg_restore wants it named)."""
    return (*args, "--dbname", settings["POSTGRES_DB"])


# Custom format: compressed, and pg_restore can pick or reorder objects.
DUMP_ARGS = ("pg_dump", "--format=custom", "--no-owner")
# One transaction: requests keep being served, and see either the old database or
# the restored one, never a mix; a failed restore changes nothing.
RESTORE_ARGS = ("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction")


# --- Database connection budgets ------------------------------------------------


def connections_per_container(settings: Settings) -> int:
    """The database connections one app container may open: WEB_CONCURRENCY x
    (DB_POOL_SIZE + DB_MAX_OVERFLOW + DB_READ_POOL_SIZE), unset ones at their
    declared defaults (.env.example). A pool keeps what a burst opened, so every
    deploy that runs old and new containers together counts them all."""
    pools = ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_READ_POOL_SIZE")
    return settings.number("WEB_CONCURRENCY") * sum(settings.number(name) for name in pools)


def surge_capacity(running: int, per_container: int, max_connections: int) -> int:
    """How many new containers may start beside the `running` ones (at most as
    many): a surge past Postgres' max_connections (less the reserved ones) would
    fail requests with "too many clients"."""
    room = max_connections - RESERVED_CONNECTIONS
    fit = int(room / per_container) - running  # bash's division: towards zero
    return min(fit, running)


def parse_max_connections(output: str) -> int | None:
    """`SHOW max_connections` as psql -At prints it, or None when it did not say."""
    value = output.rstrip("\n")
    return int(value) if re.fullmatch(r"[0-9]+", value) else None


def surge_refusal(running: int, per_container: int, max_connections: int) -> str:
    return (
        f"a new container beside the {running} running needs "
        f"{(running + 1) * per_container} database connections (each may open "
        f"{per_container}), Postgres allows {max_connections}: lower WEB_CONCURRENCY or the "
        "DB pools, or raise max_connections, or deploy with a short interruption (make up). "
        "Nothing was changed"
    )


def rolling_update_refusal(replicas: int, per_container: int, max_connections: int) -> str | None:
    """A swarm rolling update runs `replicas` + 1 app containers at once."""
    need = (replicas + 1) * per_container
    if need <= max_connections - RESERVED_CONNECTIONS:
        return None
    return (
        f"{replicas} replicas plus one during an update may open {need} database connections "
        f"({per_container} each), POSTGRES_MAX_CONNECTIONS is {max_connections}: raise it, or "
        "lower APP_REPLICAS, WEB_CONCURRENCY or the DB pools. Nothing was changed"
    )


def pooler_pool_refusal(pool_size: int, max_connections: int) -> str | None:
    """With PgBouncer, Postgres holds its pool (whatever the app's replicas open)
    and the reserved connections."""
    if pool_size <= max_connections - RESERVED_CONNECTIONS:
        return None
    return (
        f"PgBouncer may open {pool_size} database connections (PGBOUNCER_POOL_SIZE), "
        f"Postgres allows {max_connections} ({RESERVED_CONNECTIONS} kept for migrations and "
        "psql): lower PGBOUNCER_POOL_SIZE or raise max_connections. Nothing was changed"
    )


def pooled_surge_capacity(running: int, per_container: int, max_client_conn: int) -> int:
    """surge_capacity's count with PgBouncer: the containers' connections go to it,
    up to its max_client_conn (Postgres only holds PgBouncer's pool)."""
    fit = max_client_conn // per_container - running
    return min(fit, running)


def pooled_surge_refusal(running: int, per_container: int, max_client_conn: int) -> str:
    return (
        f"a new container beside the {running} running needs {(running + 1) * per_container} "
        f"connections to PgBouncer (each may open {per_container}), PGBOUNCER_MAX_CLIENT_CONN "
        f"is {max_client_conn}: raise it, or lower WEB_CONCURRENCY or the DB pools. "
        "Nothing was changed"
    )


def pooled_rolling_update_refusal(
    replicas: int, per_container: int, max_client_conn: int, pool_size: int, max_connections: int
) -> str | None:
    """rolling_update_refusal with PgBouncer: `replicas` + 1 containers' connections
    fit its max_client_conn, and its pool fits Postgres."""
    need = (replicas + 1) * per_container
    if need > max_client_conn:
        return (
            f"{replicas} replicas plus one during an update may open {need} connections to "
            f"PgBouncer ({per_container} each), PGBOUNCER_MAX_CLIENT_CONN is {max_client_conn}: "
            "raise it, or lower APP_REPLICAS, WEB_CONCURRENCY or the DB pools. Nothing was changed"
        )
    return pooler_pool_refusal(pool_size, max_connections)


# --- The HTTPS check through Traefik --------------------------------------------


@dataclass(frozen=True)
class HttpsCheck:
    """Requests through Traefik as a client sends them, certificate verified:
    curl reaches this machine's published port without DNS, unless
    HEALTH_CHECK_ADDRESS says where DOMAIN lives."""

    origin: str
    curl: tuple[str, ...]
    note: str | None = None

    @property
    def url(self) -> str:
        return f"{self.origin}/api/health/ready"


def https_check(settings: Settings) -> HttpsCheck:
    port, domain = settings["HTTPS_PORT"], settings["DOMAIN"]
    address = settings.get("HEALTH_CHECK_ADDRESS") or settings["BIND_ADDRESS"] or "127.0.0.1"
    if address == "0.0.0.0":  # noqa: S104 (published on every interface: this one too)
        address = "127.0.0.1"
    curl = ["curl", "--silent", "--show-error", "--fail", "--max-time", "5"]
    curl += ["--resolve", f"{domain}:{port}:{address}"]
    note = None
    if settings.get("HEALTH_CHECK_INSECURE", "false") == "true":
        curl.append("--insecure")
    elif settings["CERT_RESOLVER"] and "acme-staging" in settings.environ.get("ACME_CA_SERVER", ""):
        note = "Let's Encrypt staging: its certificates are untrusted by design, not verifying"
        curl.append("--insecure")
    elif settings.get("HEALTH_CHECK_CA_FILE"):
        curl += ["--cacert", settings.get("HEALTH_CHECK_CA_FILE")]
    elif not settings["CERT_RESOLVER"]:
        curl += ["--cacert", str(settings.local_ca)]
    return HttpsCheck(f"https://{domain}:{port}", tuple(curl), note)


def public_url(settings: Settings) -> str:
    port = settings["HTTPS_PORT"]
    return f"https://{settings['DOMAIN']}" + ("" if port == "443" else f":{port}")


def trust_hint(settings: Settings) -> str:
    ca = settings.local_ca
    return "\n".join(
        f"[stack] {line}"
        for line in (
            f"The certificate is signed by this project's local CA: {ca}",
            "Trust it once (then restart the browser):",
            f"  curl:            curl --cacert {ca} https://{settings['DOMAIN']}/api/health",
            f"  Debian/Ubuntu:   sudo cp {ca} /usr/local/share/ca-certificates/{CA_NICKNAME}.crt"
            " && sudo update-ca-certificates",
            "  Chrome/Chromium on Linux: make trust-ca",
            f"  Firefox:         Settings, Certificates, Import {ca} (trust it for websites)",
            "  macOS:           sudo security add-trusted-cert -d -r trustRoot -k "
            f"/Library/Keychains/System.keychain {ca}",
            "  Windows:         certutil -addstore -f ROOT ca.crt",
        )
    )


# --- What docker says, read -----------------------------------------------------


def image_repository(reference: str) -> str:
    """name:tag (or name@digest) -> name: a registry's port is not a tag."""
    name = reference.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name


def short_id(image_id: str) -> str:
    """sha256:0123456789ab... -> 0123456789ab (what a release is named by)."""
    return image_id[7:19]


def app_image_of_config(config: Mapping[str, Any]) -> str:
    """The app's image in `docker compose config --format json`."""
    image: str = config["services"]["app"]["image"]
    return image


def traefik_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {
        key: value for key, value in sorted((labels or {}).items()) if key.startswith("traefik.")
    }


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line]


@dataclass(frozen=True)
class ContainerState:
    """`docker inspect --format '{{.State.Status}} {{.RestartCount}} {{health}}'`."""

    status: str
    restarts: int
    health: str

    @classmethod
    def parse(cls, output: str) -> "ContainerState":
        fields = output.split()
        restarts = fields[1] if len(fields) > 1 else ""
        return cls(
            status=fields[0] if fields else "",
            restarts=int(restarts) if restarts.isdigit() else 0,
            health=fields[2] if len(fields) > 2 else "",
        )

    @property
    def failed(self) -> str | None:
        """Why waiting on it is pointless (what the message says), or None."""
        if self.restarts > 0 or self.status in ("exited", "dead"):
            return f"exited at start ({self.restarts} restart(s))"
        if self.health == "unhealthy":
            return "is unhealthy (its healthcheck fails)"
        return None

    @property
    def ready(self) -> bool:
        return self.status == "running" and (self.health or "healthy") == "healthy"


SERVICE_ADDR = re.compile(r'"ServiceAddr": ?"([^"]*)"')


def routed_addresses(access_log: str, probe: str) -> set[str]:
    """The backends (address:port) that answered the requests carrying `probe`, from
    Traefik's JSON access log."""
    return {
        found
        for line in access_log.splitlines()
        if probe in line
        for found in SERVICE_ADDR.findall(line)
    }


def is_routed(addresses: Iterable[str], seen: set[str]) -> bool:
    """Whether a container (its addresses on its networks) answered one of `seen`."""
    return any(backend.startswith(f"{address}:") for address in addresses for backend in seen)


def batch_size(total: int, retired: int, surge: int) -> int:
    """How many new containers the next batch starts: `surge`, less at the end."""
    return min(total - retired, surge)


# --- The commands ---------------------------------------------------------------


class Stack:
    """The compose stack on this engine: every command it runs goes through `runner`."""

    def __init__(self, runner: Runner, console: Console, settings: Settings) -> None:
        self.runner = runner
        self.console = console
        self.settings = settings
        self.log = console.log

    def compose(self, *args: str, **options: Any) -> Result:
        return self.runner.run(
            "docker", "compose", "--env-file", self.settings.env_file, *args, **options
        )

    def docker(self, *args: str, **options: Any) -> Result:
        return self.runner.run("docker", *args, **options)

    def running(self, service: str) -> bool:
        result = self.compose(
            "ps", "--status", "running", "--quiet", service, check=False, quiet=True
        )
        return bool(result.stdout.strip())

    def check_settings(self) -> None:
        for warning in check_settings(self.settings):
            self.log(warning)
        if self.external_database:
            check_external_database(self.settings)
            if pooler_in_use(self.settings):
                raise Refusal(EXTERNAL_DATABASE_POOLER)

    def show_logs(self, *services: str) -> None:
        self.compose("logs", "--tail=30", *services, check=False, capture=False, to_stderr=True)

    def https_check(self) -> HttpsCheck:
        check = https_check(self.settings)
        if check.note:
            self.log(check.note)
        return check

    def wait_for_https(self) -> None:
        """Healthy containers are not enough: wait until a client gets a healthy
        answer through Traefik, over HTTPS with the certificate verified for DOMAIN
        (a new ACME certificate can take a moment)."""
        check = self.https_check()
        timeout = self.settings.wait_timeout
        self.log(f"waiting for {check.url} (verified HTTPS through Traefik, up to {timeout}s)")
        deadline = self.runner.clock() + timeout
        while True:
            answer = self.runner.run(*check.curl, check.url, check=False, merge=True)
            if answer.ok:
                return
            if self.runner.clock() >= deadline:
                self.show_logs("traefik", "app")
                raise Refusal(
                    f"{check.url} did not answer healthy over verified HTTPS: "
                    f"{answer.stdout.rstrip(chr(10))}"
                )
            self.runner.sleep(1)

    def explain_builder(self) -> None:
        """Compose builds through BuildKit's Bake when the buildx plugin is installed;
        without it (Debian's docker.io, for one) it warns at every build and uses its
        own builder. COMPOSE_BAKE=false only trades that warning for a deprecation:
        say what it means."""
        if self.docker("buildx", "version", check=False, capture=True, quiet=True).ok:
            return
        self.log(
            "docker buildx is not installed: compose builds with its own builder and warns "
            'that it "is configured to build using Bake" (harmless; install the buildx '
            "plugin to use BuildKit)"
        )

    def local_certs(self) -> None:
        """A local CA (made once, kept) and a certificate for DOMAIN and *.DOMAIN
        signed by it (remade when missing, for another DOMAIN, or expiring within 30
        days). Traefik serves it as its default certificate
        (traefik/dynamic/local-certificate.yml)."""
        folder, domain = Path(self.settings["LOCAL_CERTS_DIR"]), self.settings["DOMAIN"]
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        ca, ca_key, crt, key = (
            folder / name for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")
        )

        def openssl(*args: str, **options: Any) -> Result:
            return self.runner.run("openssl", *args, **options)

        if not (non_empty(ca) and non_empty(ca_key)):
            self.log(
                f"creating a local CA in {folder} "
                "(valid 10 years; its key never leaves this folder)"
            )
            openssl(
                *("req", "-x509", "-new", "-nodes", "-newkey", "ec"),
                *("-pkeyopt", "ec_paramgen_curve:P-256", "-days", "3650"),
                *("-keyout", str(ca_key), "-out", str(ca)),
                "-subj",
                f"/O=FastAPI Stack/CN=FastAPI Stack local CA ({socket.gethostname()})",
                *("-addext", "basicConstraints=critical,CA:TRUE,pathlen:0"),
                *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
                quiet=True,
            )
            crt.unlink(missing_ok=True)
        if (
            non_empty(crt)
            and non_empty(key)
            and openssl(
                "x509", "-in", str(crt), "-noout", "-checkend", str(30 * 86400), check=False
            ).ok
            and f"DNS:{domain},"
            in openssl(
                "x509", "-in", str(crt), "-noout", "-ext", "subjectAltName", check=False, quiet=True
            ).stdout
            and openssl("verify", "-CAfile", str(ca), str(crt), check=False, merge=True).ok
        ):
            return
        self.log(f"signing a certificate for {domain} and *.{domain} with the local CA")
        csr = folder / "tls.csr"
        with tempfile.NamedTemporaryFile("w", suffix=".ext", delete=False) as ext:
            ext.write(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                f"extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{domain},DNS:*.{domain}\n"
            )
        try:
            openssl(
                *("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
                *("-keyout", str(key), "-out", str(csr), "-subj", f"/CN={domain}"),
                quiet=True,
            )
            # 365 days: Mozilla's intermediate server-side TLS profile wants at most 366.
            openssl(
                *("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key)),
                *("-CAcreateserial", "-days", "365", "-sha256", "-extfile", ext.name),
                *("-out", str(crt)),
                quiet=True,
            )
        finally:
            Path(ext.name).unlink(missing_ok=True)
            csr.unlink(missing_ok=True)
        for private in folder.glob("*.key"):
            private.chmod(0o600)

    def print_trust_hint(self) -> None:
        print(trust_hint(self.settings), flush=True)

    def up(self) -> None:
        self.check_settings()
        if not self.settings["CERT_RESOLVER"]:
            self.local_certs()
        timeout = self.settings.wait_timeout
        self.log(
            f"building and starting (waiting up to {timeout}s for every service to be healthy)"
        )
        self.explain_builder()
        started = self.compose(
            *("up", "--detach", "--build", "--wait", "--wait-timeout", str(timeout)),
            "--remove-orphans",
            check=False,
            capture=False,
        )
        if not started.ok:
            self.compose("ps", "--all", check=False, capture=False, to_stderr=True)
            self.compose("logs", "--tail=40", check=False, capture=False, to_stderr=True)
            # The one-shot migrate service says why it stopped in its last line (a
            # refused database login, say): repeat it where it cannot be missed.
            states = self.compose(
                *("ps", "--all", "--format", "{{.Service}} {{.ExitCode}}", "migrate"),
                check=False,
                quiet=True,
            ).stdout
            migrate_exit = "\n".join(
                line.split()[1] if len(line.split()) > 1 else "" for line in states.splitlines()
            ).rstrip("\n")
            if migrate_exit and migrate_exit != "0":
                last = self.compose(
                    "logs", "--no-log-prefix", "--tail=1", "migrate", check=False, quiet=True
                ).stdout
                raise Refusal(f"migrations did not run: {last.rstrip(chr(10))}")
            raise Refusal("the stack did not become healthy (see above; make logs for more)")
        self.wait_for_https()
        self.compose("ps", capture=False)
        self.log(f"ready: {public_url(self.settings)}/docs")
        if not self.settings["CERT_RESOLVER"]:
            self.print_trust_hint()

    # --- Deploying a new release without dropping a request (`make deploy`) -------
    # Nothing serving yet: `up`, as above. Otherwise the app's containers are
    # replaced, never recreated in place (which fails the requests in flight and the
    # ones sent before the new container is healthy): build and tag the release,
    # migrate (the running release keeps serving on the migrated schema, so a
    # migration must stay compatible with it), start as many new containers beside
    # the old ones, wait until Docker reports them healthy and Traefik sends them
    # requests, then stop the old ones one at a time (SIGTERM: each leaves Traefik's
    # rotation, then drains; gunicorn.conf.py). A release that is not healthy within
    # WAIT_TIMEOUT is removed again and the old containers serve on.

    def max_connections(self) -> int:
        if self.external_database:
            shown = self.database_tool("psql", "-Atc", "SHOW max_connections", check=False)
        else:
            shown = self.compose(
                *("exec", "-T", "db", "psql", "-U", self.settings["POSTGRES_USER"]),
                *("-d", self.settings["POSTGRES_DB"], "-Atc", "SHOW max_connections"),
                check=False,
            )
        value = parse_max_connections(shown.stdout)
        if value is None:
            self.log(
                "warning: could not read Postgres' max_connections, assuming its default "
                f"({DEFAULT_MAX_CONNECTIONS})",
                stderr=True,
            )
            return DEFAULT_MAX_CONNECTIONS
        return value

    def surge_within_budget(self, running: int) -> int:
        """How many new containers may start beside the running ones; refuses when
        not even one fits (Postgres' connections, or with PgBouncer its clients and
        its pool)."""
        per_container = connections_per_container(self.settings)
        max_connections = self.max_connections()
        if not pooler_in_use(self.settings):
            surge = surge_capacity(running, per_container, max_connections)
            if surge < 1:
                raise Refusal(surge_refusal(running, per_container, max_connections))
            return surge
        refusal = pooler_pool_refusal(self.settings.number("PGBOUNCER_POOL_SIZE"), max_connections)
        if refusal:
            raise Refusal(refusal)
        max_client_conn = self.settings.number("PGBOUNCER_MAX_CLIENT_CONN")
        surge = pooled_surge_capacity(running, per_container, max_client_conn)
        if surge < 1:
            raise Refusal(pooled_surge_refusal(running, per_container, max_client_conn))
        return surge

    def app_containers(self) -> list[str]:
        return lines(self.compose("ps", "--all", "--quiet", "app").stdout)

    def wait_healthy(self, ids: Sequence[str]) -> str | None:
        """None once every container is healthy; else why not, as soon as one
        exits, restarts or turns unhealthy, or when WAIT_TIMEOUT has passed."""
        timeout = self.settings.wait_timeout
        deadline = self.runner.clock() + timeout
        template = (
            "{{.State.Status}} {{.RestartCount}} "
            "{{if .State.Health}}{{.State.Health.Status}}{{end}}"
        )
        while True:
            waiting = []
            for id_ in ids:
                state = ContainerState.parse(
                    self.docker("inspect", "--format", template, id_).stdout
                )
                failed = state.failed
                if failed:
                    last = self.docker("logs", "--tail", "3", id_, check=False, merge=True).stdout
                    last = last.replace("\n", " ")  # tr '\n' ' '
                    return f"container {id_[:12]} {failed}; its last lines: {last}"
                if not state.ready:
                    waiting.append(id_[:12])
            if not waiting:
                return None
            if self.runner.clock() >= deadline:
                return (
                    f"container(s) {' '.join(waiting)} not healthy within {timeout}s (WAIT_TIMEOUT)"
                )
            self.runner.sleep(1)

    def wait_routed(self, ids: Sequence[str], check: HttpsCheck) -> str | None:
        """None once Traefik sends requests to every one of these containers: its own
        view (Docker's health, then its health check of the drain probe), read in its
        access log, where each request names the backend that answered it."""
        timeout = self.settings.wait_timeout
        deadline = self.runner.clock() + timeout
        traefik = (lines(self.compose("ps", "--quiet", "traefik", check=False).stdout) or [""])[0]
        probe = f"deploy-{self.runner.now()}-{self.runner.token()}"
        since = self.runner.now() - 1
        networks = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        while True:
            for _ in range(3 * len(ids)):
                self.runner.run(
                    *check.curl,
                    "--output",
                    "/dev/null",
                    f"{check.url}?probe={probe}",
                    check=False,
                    quiet=True,
                )
            log = self.docker(
                "logs", "--since", str(since), traefik, check=False, merge=True
            ).stdout
            seen = routed_addresses(log, probe)
            missing = [
                id_[:12]
                for id_ in ids
                if not is_routed(
                    self.docker("inspect", "--format", networks, id_, check=False).stdout.split(),
                    seen,
                )
            ]
            if not missing:
                return None
            if self.runner.clock() >= deadline:
                missed = " ".join(missing)
                return f"Traefik sent no request to {missed} within {timeout}s (WAIT_TIMEOUT)"
            self.runner.sleep(1)

    def retire(self, ids: Sequence[str]) -> None:
        """Stop (SIGTERM: out of Traefik's rotation, then drained) and remove, one at a time."""
        for index, id_ in enumerate(ids):
            if index:
                self.runner.sleep(PROVIDER_SETTLE_SECONDS)
            self.docker("stop", id_)  # returns once it exited (stop_grace_period at most)
            self.docker("rm", id_)
            self.log(f"  stopped and removed {id_[:12]}")

    def deploy(self) -> None:
        if not self.running("app") or not self.running("traefik"):
            self.log("no release serving: starting the whole stack")
            self.up()
            return
        self.check_settings()
        if not self.settings["CERT_RESOLVER"]:
            self.local_certs()
        check = self.https_check()
        started = self.runner.clock()
        config = json.loads(self.compose("config", "--format", "json", "app").stdout)
        image = app_image_of_config(config)
        old = self.app_containers()
        previous = self.docker("inspect", "--format", "{{.Image}}", old[0]).stdout.strip()
        inspected = json.loads(self.docker("inspect", old[0]).stdout)
        if traefik_labels(config["services"]["app"].get("labels")) != traefik_labels(
            inspected[0]["Config"]["Labels"]
        ):
            # Two containers of one Traefik service with different routers conflict,
            # and Traefik then drops the router: nothing would be served meanwhile.
            self.log(
                "the app's Traefik labels change (DOMAIN, CERT_RESOLVER...): recreating, "
                "with a short interruption"
            )
            self.up()
            return
        surge = self.surge_within_budget(len(old))

        self.log(f"building {image} (revision {self.settings.environ.get('APP_REVISION', '')})")
        self.explain_builder()
        self.compose("build", "app", capture=False)
        release = self.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        self.docker("tag", release, f"{image_repository(image)}:{short_id(release)}", capture=False)
        self.log(
            f"release {image_repository(image)}:{short_id(release)}; running: {short_id(previous)}"
        )

        # The other services change only when their settings do (then they are
        # recreated: compose cannot replace Traefik or Postgres without a pause).
        services = [
            name
            for name in lines(self.compose("config", "--services").stdout)
            if name not in ("app", "migrate")
        ]
        timeout = str(self.settings.wait_timeout)
        others = self.compose(
            *("up", "--detach", "--wait", "--wait-timeout", timeout, "--no-deps"),
            *("--remove-orphans", *services),
            check=False,
            capture=False,
        )
        if not others.ok:
            self.docker("tag", previous, image, capture=False)
            raise Refusal(
                f"{' '.join(services)} did not become healthy (see above); the app was not changed"
            )

        self.log("migrating with the new release (the running one keeps serving)")
        self.compose("up", "--detach", "--no-deps", "migrate", capture=False)
        migrate = self.compose("ps", "--all", "--quiet", "migrate").stdout.strip()
        status = self.docker("wait", migrate).stdout.strip()
        if status != "0":
            self.docker("tag", previous, image, capture=False)
            last = self.docker("logs", "--tail", "1", migrate, check=False, merge=True).stdout
            raise Refusal(
                f"migrations did not run, the running release serves on: {last.rstrip(chr(10))}"
            )

        # In batches of `surge` (all at once when the database can hold twice the
        # containers): start new ones, wait until they serve, retire as many old ones.
        retired = 0
        while retired < len(old):
            count = batch_size(len(old), retired, surge)
            running = self.app_containers()
            self.log(f"starting {count} new app container(s) beside the {len(running)} running")
            self.compose(
                *("up", "--detach", "--no-deps", "--no-recreate"),
                *("--scale", f"app={len(running) + count}", "app"),
                check=False,
                capture=False,
            )
            new = sorted(set(self.app_containers()) - set(running))
            reason = self.why_not_serving(new, count, check)
            if reason:
                self.log(f"the new release failed: {reason}")
                self.log("removing its container(s) that failed")
                self.retire(new)
                if retired == 0:
                    self.docker("tag", previous, image, capture=False)
                    raise Refusal(
                        f"deploy failed, release {short_id(release)} removed, "
                        f"{short_id(previous)} still serving: {reason}"
                    )
                raise Refusal(
                    f"deploy stopped half-way: {retired} new and {len(old) - retired} old "
                    f"container(s) serve; make deploy again: {reason}"
                )
            elapsed = int(self.runner.clock() - started)
            self.log(
                f"Traefik routes to the new container(s) after {elapsed}s: "
                "retiring as many old ones"
            )
            self.retire(old[retired : retired + count])
            retired += count
        self.wait_for_https()
        self.compose("ps", "app", capture=False)
        elapsed = int(self.runner.clock() - started)
        self.log(
            f"deployed {short_id(release)} on {len(old)} container(s) in {elapsed}s, "
            "no request dropped"
        )

    def why_not_serving(self, new: Sequence[str], count: int, check: HttpsCheck) -> str | None:
        """None once every new container is healthy and routed to, else why not."""
        if len(new) != count:
            return f"compose started {len(new)} new container(s), not {count} (see above)"
        try:
            return self.wait_healthy(new) or self.wait_routed(new, check)
        except CommandFailed:
            return "the new containers could not be inspected"

    # --- Maintenance ------------------------------------------------------------

    def prestart(self) -> None:
        """Migrations and the superuser both come from `python -m app.prestart`, which
        is idempotent; in the stack that is the one-shot `migrate` service."""
        if self.external_database or self.running("db"):
            self.compose("run", "--rm", "--no-deps", "migrate", capture=False)
        else:
            self.log(
                "the stack's database is not running: using "
                f"POSTGRES_URL={self.settings.environ.get('POSTGRES_URL') or 'localhost:5432'} "
                f"from {self.settings.env_file}"
            )
            self.runner.run(".venv/bin/python", "-m", "app.prestart", capture=False)

    @property
    def external_database(self) -> bool:
        return uses_external_database(self.settings.environ.get("COMPOSE_FILE", ""))

    def database_tool(self, *args: str, **options: Any) -> Result:
        """Run a libpq tool against the app's database: in the db container, or, for
        a managed database, in a one-off db-client container (compose.external-db.yaml)
        that connects as the app does, TLS and CA included."""
        if self.external_database:
            check_external_database(self.settings)
            environment = database_client_environment(self.settings, CONTAINER_DB_CA_FILE)
            passed = [word for name in environment for word in ("-e", name)]
            return self.compose(
                *("run", "--rm", "--no-deps", "-T", *passed, "db-client"),
                *libpq_command(self.settings, *args),
                env=environment,
                **options,
            )
        # PGPASSWORD goes through the environment, never the command line.
        return self.compose(
            *("exec", "-T", "-e", "PGPASSWORD", "db", *args),
            *("-h", "127.0.0.1", "-U", self.settings["POSTGRES_USER"]),
            *("-d", self.settings["POSTGRES_DB"]),
            env={"PGPASSWORD": self.settings.environ.get("POSTGRES_PW", "")},
            **options,
        )

    def backup(self) -> None:
        if not self.external_database and not self.running("db"):
            raise Refusal("the db service is not running (make up)")
        folder = Path(self.settings.get("BACKUP_DIR", "backups"))
        # A dump holds password hashes: readable by its owner only, like .env.
        if not folder.is_dir():
            folder.mkdir(parents=True)
            folder.chmod(0o700)
        os.umask(0o077)
        file = folder / time.strftime("%Y%m%dT%H%M%SZ.dump", time.gmtime())
        partial = file.with_name(file.name + ".partial")
        self.database_tool(*DUMP_ARGS, stdout_path=partial)
        partial.rename(file)
        size = self.runner.run("du", "-h", str(file)).stdout.split("\t")[0].strip()
        self.log(f"wrote {file} ({size})")

    def restore(self, file: str) -> None:
        if not self.external_database and not self.running("db"):
            raise Refusal("the db service is not running (make up)")
        self.log(f"restoring {file} into {self.settings['POSTGRES_DB']}")
        self.database_tool(*RESTORE_ARGS, stdin=Path(file), capture=False)
        self.log("restored")


def non_empty(path: Path) -> bool:
    """`[[ -s path ]]`"""
    return path.is_file() and path.stat().st_size > 0


def trust_ca(runner: Runner, console: Console, ca: Path) -> None:
    """Chrome and Chromium on Linux trust what $HOME/.pki/nssdb holds. That database
    exists only once Chromium has run: create it (empty password) when missing."""
    if not ca.is_file():
        raise Refusal(f"{ca} does not exist: make up creates it")
    if not runner.which("certutil"):
        raise Refusal("certutil is missing: sudo apt-get install libnss3-tools")
    nssdb = Path(runner.environ.get("HOME", str(Path.home()))) / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    database = f"sql:{nssdb}"
    if not runner.run("certutil", "-d", database, "-L", check=False, merge=True).ok:
        runner.run("certutil", "-d", database, "-N", "--empty-password", capture=False)
    runner.run(
        *("certutil", "-d", database, "-A", "-t", "C,,", "-n", CA_NICKNAME, "-i", str(ca)),
        capture=False,
    )
    console.log(f"Chromium trusts {ca} (as {CA_NICKNAME} in {nssdb}): restart it")


def run_command(args: Sequence[str], runner: Runner, console: Console) -> None:
    command, rest = (args[0], list(args[1:])) if args else ("", [])

    def stack() -> Stack:
        return Stack(runner, console, load_env(runner, runner.environ))

    if command == "up":
        stack().up()
    elif command == "deploy":
        stack().deploy()
    elif command in ("migrate", "superuser"):
        stack().prestart()
    elif command == "backup":
        stack().backup()
    elif command == "restore":
        file = rest[0] if rest else ""
        if not file or not Path(file).is_file():
            raise Refusal("usage: make restore FILE=backups/<file>.dump")
        stack().restore(file)
    elif command == "local-certs":
        local = stack()
        local.local_certs()
        local.print_trust_hint()
    elif command == "trust-ca":
        ca = Path(rest[0]) if rest and rest[0] else stack().settings.local_ca
        trust_ca(runner, console, ca)
    else:
        raise Refusal(USAGE)


def main(
    args: Sequence[str],
    command: Callable[[Sequence[str], Runner, Console], None] = run_command,
    prefix: str = "stack",
    runner: Runner | None = None,
) -> int:
    """Run `command`; a refusal is `[prefix] ERROR: ...` and status 1, a command
    that failed ends it with its own status (as `set -e` did)."""
    if args[:1] in (["-h"], ["--help"]):
        print(sys.modules[command.__module__].__doc__)
        return 0
    console = Console(prefix)
    try:
        command(args, runner or Runner(), console)
    except Refusal as refusal:
        console.error(str(refusal))
        return 1
    except CommandFailed as failed:
        return failed.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
