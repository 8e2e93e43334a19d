"""The stack around the app: Traefik, the certificate, the images, gunicorn, compose
and the swarm. The app never loads this group (compose, Traefik, gunicorn and the
deploy scripts read these variables from the same `.env`); it is declared here so
that `.env.example`, the docs and the deploy derive from one place."""

from typing import ClassVar, Literal

from pydantic import SecretStr

from app.settings.base import SettingsGroup
from app.settings.declaration import setting

PINNED = "Empty: the image pinned in compose.yaml."


class EdgeSettings(SettingsGroup):
    """Images: set any of them to name:tag or name:tag@sha256:... to use a mirror or
    a digest."""

    TITLE: ClassVar[str] = "Stack (compose.yaml, Traefik, gunicorn, the image)"

    CERT_RESOLVER: Literal["", "letsencrypt"] = setting(
        "",
        "Where the TLS certificate comes from. '': a certificate for DOMAIN signed by "
        "the project's own local CA, made by `make up` in LOCAL_CERTS_DIR (trust its "
        "ca.crt once: `make trust-ca`), for local domains no public CA serves. "
        "'letsencrypt': Let's Encrypt through the ACME HTTP-01 challenge on port 80; "
        "DOMAIN must be public and reach this machine (the CI deploy sets it).",
    )
    ACME_EMAIL: str = setting(
        "",
        "Contact address for the ACME account (expiry and incident notices).",
        required_in_production=True,
    )
    ACME_CA_SERVER: str = setting(
        "https://acme-v02.api.letsencrypt.org/directory",
        "The ACME directory. While trying things out use staging (certificates not "
        "trusted by browsers, far higher rate limits): "
        "https://acme-staging-v02.api.letsencrypt.org/directory. Switching CA? Remove "
        "the old certificates: docker compose down && docker volume rm "
        "fastapi-stack_letsencrypt",
    )
    BIND_ADDRESS: str = setting(
        "0.0.0.0",  # noqa: S104 (Traefik serves the internet)
        "Host address Traefik publishes its ports on; 127.0.0.1 keeps the stack "
        "private to this machine.",
    )
    HTTP_PORT: int = setting(80, "Traefik's HTTP port (redirects; HTTP-01 needs it reachable).")
    HTTPS_PORT: int = setting(443, "Traefik's HTTPS port.")
    TRAEFIK_IMAGE: str = setting("", PINNED)
    POSTGRES_IMAGE: str = setting("", PINNED)
    MAILDEV_IMAGE: str = setting("", PINNED)
    PROMETHEUS_IMAGE: str = setting("", PINNED)
    POSTGRES_EXPORTER_IMAGE: str = setting("", PINNED)
    DEBIAN_IMAGE: str = setting(
        "", "Empty: the base of the PgBouncer image pinned in compose.yaml."
    )
    PGBOUNCER_IMAGE: str = setting(
        "",
        "The PgBouncer image built from pgbouncer/ (profile 'pgbouncer'); empty: "
        "fastapi-stack-pgbouncer:1.24. On a swarm of several nodes, a registry/name:tag "
        "the nodes pull from (the deploy pushes it).",
    )
    PYTHON_IMAGE: str = setting("", "Empty: the base of the app's image pinned in compose.yaml.")
    APP_IMAGE: str = setting(
        "",
        "The app's own image; empty: fastapi-stack-app:latest. On a swarm of several "
        "nodes, a registry/name:tag the nodes pull from (the deploy pushes each release).",
    )
    WEB_CONCURRENCY: int = setting(
        2,
        "Gunicorn's uvicorn worker processes per app container (scale containers "
        "with `docker compose up -d --scale app=N`). Each worker opens up to "
        "DB_POOL_SIZE + DB_MAX_OVERFLOW + DB_READ_POOL_SIZE connections; `make deploy` "
        "runs new containers beside the old ones and refuses when they would not fit "
        "Postgres' max_connections (100), or with the pooler PGBOUNCER_MAX_CLIENT_CONN.",
        ge=1,
    )
    COMPOSE_PROFILES: str = setting(
        "",
        "Optional services of compose.yaml, comma-separated: 'metrics' runs "
        "Prometheus (scraping every app replica, Traefik and Postgres through its "
        "exporter, with the alert rules of prometheus/alerts.yml) at "
        "https://metrics.<DOMAIN> behind PROMETHEUS_USERS; 'pgbouncer' runs PgBouncer "
        "between the app and Postgres (with DB_POOLER_URL='pgbouncer:6432'), for more "
        "replicas than Postgres has connections; 'mail-catcher' runs "
        "MailDev, which receives every mail and shows them at https://mail.<DOMAIN>, "
        "for development only: `make .env` turns it on for a new local .env; "
        "production refuses it.",
    )
    PROMETHEUS_USERS: SecretStr = setting(
        SecretStr(""),
        "Who may open https://metrics.<DOMAIN> (profile 'metrics'): "
        "'admin:<bcrypt hash>' from `htpasswd -nbB admin 'a-password'` (keep the "
        "single quotes: the hash holds $). The profile refuses to start without it.",
    )
    PROMETHEUS_RETENTION: str = setting(
        "15d", "How long Prometheus keeps its samples (its --storage.tsdb.retention.time)."
    )
    APP_REPLICAS: int = setting(
        3, "Docker Swarm only (make deploy-swarm): the app's replicas.", ge=1
    )
    POSTGRES_MAX_CONNECTIONS: int = setting(
        200,
        "Docker Swarm only: Postgres' max_connections; it must hold APP_REPLICAS + 1 "
        "app containers during a rolling update (the deploy checks before it starts), "
        "or with the pooler, PGBOUNCER_POOL_SIZE.",
        ge=1,
    )
    PGBOUNCER_POOL_SIZE: int = setting(
        20,
        "With the profile 'pgbouncer': PgBouncer's connections to Postgres, at most "
        "(default_pool_size and max_db_connections). All of the app's transactions "
        "share them; the deploys check they fit Postgres' max_connections.",
        ge=1,
    )
    PGBOUNCER_MAX_CLIENT_CONN: int = setting(
        1000,
        "With the profile 'pgbouncer': client connections PgBouncer accepts. Every app "
        "container may open WEB_CONCURRENCY x (DB_POOL_SIZE + DB_MAX_OVERFLOW + "
        "DB_READ_POOL_SIZE); the deploys check the replicas (and one more while "
        "replacing them) fit.",
        ge=1,
    )
    GRACEFUL_TIMEOUT: int = setting(
        30, "Seconds a stopping container lets in-flight requests finish.", ge=0
    )
    DRAIN_SECONDS: float = setting(
        3.0,
        "Seconds an app container keeps serving after SIGTERM while Traefik takes it "
        "out of rotation (its drain probe answers 503), before the graceful drain.",
        ge=0,
    )
    SHARE_PRELOADED_OBJECTS: bool = setting(
        True,
        "Before forking its workers, gunicorn's master makes the objects it preloaded "
        "immortal (CPython 3.12 and 3.13; app/immortal.py), so the workers keep sharing "
        "their pages instead of copying them as they use them: about half of each "
        "worker's private memory (docs/performance.md). 'false' turns it off.",
    )
    AUTH_RATE_LIMIT_AVERAGE: int = setting(
        10,
        "Traefik's rate limit on /api/token*, register, the cookie login and the mail "
        "endpoints: requests a minute per client address on average; then 429.",
        ge=1,
    )
    AUTH_RATE_LIMIT_BURST: int = setting(20, "The burst allowed above that average.", ge=1)
    TRAEFIK_LOG_LEVEL: Literal["DEBUG", "INFO", "WARN", "ERROR"] = setting(
        "INFO", "Traefik's own log level (access logs are always on, JSON)."
    )
    TRAEFIK_DASHBOARD: bool = setting(
        False,
        "The Traefik dashboard at https://traefik.<DOMAIN>/dashboard/, off unless "
        "'true'; it then requires basic auth (TRAEFIK_DASHBOARD_USERS).",
    )
    TRAEFIK_DASHBOARD_USERS: SecretStr = setting(
        SecretStr(""),
        "'admin:<bcrypt hash>' from `htpasswd -nbB admin 'a-password'` (keep the "
        "single quotes: the hash holds $).",
    )
    PROXY_NETWORK: str = setting("fastapi-stack-proxy", "The network Traefik shares with the app.")
    PROXY_SUBNET: str = setting(
        "198.18.200.0/24",
        "Its subnet, from which the app trusts X-Forwarded-For/-Proto. Change it only "
        "if it collides with a network you use.",
    )
    LOCAL_CERTS_DIR: str = setting(
        "./.local/certs", "Folder of the local CA and its certificate (git-ignored)."
    )
