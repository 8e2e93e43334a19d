"""Monitoring through the real stack (COMPOSE_PROFILES=metrics).

Prometheus (prometheus/prometheus.yml) scrapes each of two app replicas on its
metrics port, Traefik's metrics entrypoint and Postgres through its exporter, all
over the stack's networks; its UI and API are at https://metrics.<DOMAIN> through
Traefik, behind basic auth (PROMETHEUS_USERS). One request's id is the same in
the response, Traefik's access log and the app's log. Then the database is
stopped under load, and the `DatabaseUnreachable` alert (prometheus/alerts.yml)
is seen pending and then firing in Prometheus's API within its `for:` window
(plus one scrape and one evaluation), and resolved once the database is back.
"""

import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest
import yaml

from tests.stack.conftest import (
    DOMAIN,
    REPO,
    Stack,
    env_file_text,
    record_figures,
    register_user,
    timed,
)
from tests.stack.load import Load
from tests.stack.test_10_database_faults import db_container, wait_healthy
from tests.stack.test_16_mail_catcher import fresh_acme_account

METRICS_HOST = f"metrics.{DOMAIN}"
OPERATOR = "ops"
OPERATOR_PASSWORD = secrets.token_urlsafe(16)
REPLICAS = 2


def alert_rule(name: str) -> dict[str, Any]:
    groups = yaml.safe_load((REPO / "prometheus" / "alerts.yml").read_text())["groups"]
    rules: list[dict[str, Any]] = [r for g in groups for r in g["rules"]]
    (rule,) = [r for r in rules if r.get("alert") == name]
    return rule


def seconds(duration: str) -> float:
    """A Prometheus duration of one unit (15s, 1m) in seconds."""
    number, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()  # type: ignore[union-attr]
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit]


@pytest.fixture(scope="module")
def metrics_stack(configured_stack: Stack) -> Iterator[Stack]:
    stack = configured_stack
    started = time.monotonic()
    hashed = bcrypt.hashpw(OPERATOR_PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode()
    settings = {
        **stack.settings,
        "COMPOSE_PROFILES": "metrics",
        "PROMETHEUS_USERS": f"{OPERATOR}:{hashed}",
    }
    stack.env_file.write_text(env_file_text(settings))
    stack.deploy()
    stack.compose(
        "up",
        "--detach",
        "--wait",
        "--no-recreate",
        "--no-deps",
        "--scale",
        f"app={REPLICAS}",
        "app",
    )
    # metrics.<DOMAIN> needs a certificate of its own, from the pebble of this run.
    fresh_acme_account(stack)

    def certified() -> bool:
        with stack.client() as client:  # trusts the ACME root only
            return client.get(f"https://{METRICS_HOST}/-/ready").status_code == 401

    stack.wait_until(f"{METRICS_HOST}'s certificate from pebble", certified, timeout=90)
    timed(f"redeployed with COMPOSE_PROFILES=metrics, {REPLICAS} app replicas", started)
    try:
        yield stack
    finally:
        started = time.monotonic()
        # Back to one replica first: the deploy's connection budget counts the running.
        stack.compose(
            "up", "--detach", "--wait", "--no-recreate", "--no-deps", "--scale", "app=1", "app"
        )
        stack.env_file.write_text(env_file_text(stack.settings))
        stack.deploy()
        stack.compose("rm", "--force", "--stop", "prometheus", "postgres-exporter", check=False)
        timed("redeployed without the metrics profile", started)


def prometheus(stack: Stack, path: str, **params: str) -> Any:
    with stack.client(auth=(OPERATOR, OPERATOR_PASSWORD)) as client:
        response = client.get(f"https://{METRICS_HOST}{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_the_metrics_site_needs_its_password(metrics_stack: Stack) -> None:
    stack = metrics_stack
    url = f"https://{METRICS_HOST}/api/v1/status/buildinfo"
    with stack.client() as client:
        assert client.get(url).status_code == 401
        assert client.get(url, auth=(OPERATOR, "not-the-password")).status_code == 401
        answered = client.get(url, auth=(OPERATOR, OPERATOR_PASSWORD))
    assert answered.status_code == 200, answered.text
    assert answered.json()["data"]["version"].startswith("2.53.3")
    # The app's metrics are not on the public site: its router sends /metrics to
    # the API, which has no such route.
    with stack.client() as client:
        assert client.get("/metrics").status_code == 404


def test_every_replica_traefik_and_postgres_are_scraped(metrics_stack: Stack) -> None:
    stack = metrics_stack
    started = time.monotonic()
    replicas = stack.container_ids("app")
    assert len(replicas) == REPLICAS
    addresses = {
        network["IPAddress"]
        for container in replicas
        for network in stack.inspect(container)["NetworkSettings"]["Networks"].values()
    }
    # Requests for both replicas (Traefik balances them round robin).
    with stack.client() as client:
        for _ in range(20):
            assert client.get("/api/health/ready").status_code == 200

    def all_up() -> dict[str, list[str]] | None:
        targets = prometheus(stack, "/api/v1/targets", state="active")["activeTargets"]
        by_job: dict[str, list[str]] = {}
        for target in targets:
            if target["health"] != "up":
                return None
            by_job.setdefault(target["labels"]["job"], []).append(target["labels"]["instance"])
        if len(by_job.get("app", [])) != REPLICAS or not {"traefik", "postgres"} <= set(by_job):
            return None
        return by_job

    jobs: dict[str, list[str]] = stack.wait_until(
        "every target up in Prometheus", all_up, timeout=90, interval=2
    )
    scraped = {instance.rsplit(":", 1)[0] for instance in jobs["app"]}
    assert scraped <= addresses, (scraped, addresses)
    assert len(scraped) == REPLICAS

    def requests_per_replica() -> dict[str, float] | None:
        result = prometheus(
            stack,
            "/api/v1/query",
            query='sum by (instance) (app_http_requests_total{route="/api/health/ready"})',
        )["result"]
        counts = {sample["metric"]["instance"]: float(sample["value"][1]) for sample in result}
        return counts if len(counts) == REPLICAS else None

    counts = stack.wait_until(
        "each replica's request counts in Prometheus", requests_per_replica, timeout=60, interval=2
    )
    pg_up = prometheus(stack, "/api/v1/query", query="pg_up")["result"]

    def traefik_requests() -> list[dict[str, Any]] | None:
        # Traefik's series for the requests above exist from its next scrape on.
        result: list[dict[str, Any]] = prometheus(
            stack,
            "/api/v1/query",
            query='sum(traefik_entrypoint_requests_total{entrypoint="websecure"})',
        )["result"]
        return result or None

    traefik = stack.wait_until(
        "Traefik's request count in Prometheus", traefik_requests, timeout=60, interval=2
    )
    names = prometheus(stack, "/api/v1/label/__name__/values", **{"match[]": '{job="traefik"}'})
    record_figures(
        "prometheus targets",
        {
            "app replicas scraped": len(scraped),
            "requests per replica": counts,
            "seconds until all up": round(time.monotonic() - started, 1),
        },
    )
    assert sum(counts.values()) >= 20
    assert [float(sample["value"][1]) for sample in pg_up] == [1.0]
    assert traefik, " ".join(name for name in names if name.startswith("traefik_"))
    assert float(traefik[0]["value"][1]) > 0


def test_one_request_id_in_the_answer_the_access_log_and_the_app_log(
    metrics_stack: Stack,
) -> None:
    stack = metrics_stack
    with stack.client() as client:
        answered = client.get("/api/health/ready")
    request_id = answered.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id

    def lines_with_id(service: str) -> list[dict[str, Any]]:
        logs = stack.compose("logs", "--no-color", "--no-log-prefix", service).stdout
        found = []
        for line in logs.splitlines():
            if request_id in line and line.lstrip().startswith("{"):
                found.append(json.loads(line))
        return found

    access = stack.wait_until(
        "the request in Traefik's access log", lambda: lines_with_id("traefik"), timeout=20
    )
    app = stack.wait_until("the request in the app's log", lambda: lines_with_id("app"), timeout=20)
    assert [line["TraceId"] for line in access] == [request_id]
    assert access[0]["RequestPath"] == "/api/health/ready"
    assert all(line["request_id"] == request_id for line in app)
    assert any(line.get("route") == "/api/health/ready" for line in app), app


def test_a_stopped_database_fires_its_alert_within_its_for_window(
    metrics_stack: Stack,
) -> None:
    stack = metrics_stack
    rule = alert_rule("DatabaseUnreachable")
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["global"]
    waiting = seconds(rule["for"])
    # The exporter is scraped, then the rule evaluated, within one interval each.
    allowed = (
        waiting + seconds(config["scrape_interval"]) + 2 * seconds(config["evaluation_interval"])
    )
    user = register_user(stack, "alerts")

    def state() -> str | None:
        alerts = prometheus(stack, "/api/v1/alerts")["alerts"]
        states = [a["state"] for a in alerts if a["labels"]["alertname"] == "DatabaseUnreachable"]
        return states[0] if states else None

    assert state() is None
    pending = firing = resolved = None
    with Load(stack, user["access_token"], name_prefix=f"alert-{uuid.uuid4().hex[:8]}"):
        time.sleep(3)
        stopped = time.monotonic()
        stack.compose("stop", "db")
        try:
            while time.monotonic() - stopped < allowed + 30:
                now = state()
                if now == "pending" and pending is None:
                    pending = time.monotonic() - stopped
                if now == "firing":
                    firing = time.monotonic() - stopped
                    break
                time.sleep(1)
        finally:
            stack.compose("start", "db")
            wait_healthy(stack, db_container(stack))
        back = time.monotonic()
        try:
            stack.wait_until("the alert resolved", lambda: state() is None, timeout=90, interval=1)
            resolved = time.monotonic() - back
        finally:
            record_figures(
                "DatabaseUnreachable alert",
                {
                    "for": rule["for"],
                    "allowed s": allowed,
                    "pending after s": None if pending is None else round(pending, 1),
                    "firing after s": None if firing is None else round(firing, 1),
                    "resolved after db back s": None if resolved is None else round(resolved, 1),
                },
            )
    assert firing is not None, f"not firing within {allowed:.0f} s (+30 s of grace)"
    assert firing <= allowed
    # Pending first: it waited its `for:` and did not fire on one bad sample.
    assert pending is not None
    assert firing - pending >= waiting - 3  # polled every second
