"""The metrics of the real server (gunicorn.conf.py, 2 uvicorn workers, the suite's
Postgres): served by the master on METRICS_PORT as the sums over both workers,
labelled by route template, never on the app's own port."""

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD
from tests.test_preloaded_workers import READ_POOL_SIZE, WORKERS, Gunicorn, gunicorn

__all__ = ["gunicorn"]  # the fixture, started once for this module

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ITEM_ROUTE = "/api/items/{item_id}"


def scrape(server: Gunicorn) -> Samples:
    answer = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10)
    assert answer.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def metrics_dir(server: Gunicorn) -> Path:
    """The master's PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py makes one), where
    its workers map their files."""
    for pid in server.workers:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            if line.endswith(".db") and "/app-metrics-" in line:
                return Path(line.split()[-1]).parent
    raise AssertionError("no worker has mapped a metrics file")


def requests_counted_by(server: Gunicorn, pid: int) -> float:
    """One worker's own count of the item route, from its own file."""
    path = metrics_dir(server) / f"counter_{pid}.db"
    if not path.exists():
        return 0
    counted = 0.0
    for metric in MultiProcessCollector.merge([str(path)], accumulate=True):  # type: ignore[no-untyped-call]
        for sample in metric.samples:
            if sample.name == "app_http_requests_total" and sample.labels["route"] == ITEM_ROUTE:
                counted += sample.value
    return counted


@pytest.fixture
def signed_in(gunicorn: Gunicorn) -> tuple[str, int]:
    base = f"http://127.0.0.1:{gunicorn.port}"
    email = f"metrics-{uuid.uuid4().hex[:8]}@example.com"
    registered = httpx.post(
        f"{base}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert registered.status_code == 201, registered.text
    refused = httpx.post(
        f"{base}/api/token/", data={"username": email, "password": "not-" + PASSWORD}, timeout=10
    )
    assert refused.status_code == 401
    token = httpx.post(
        f"{base}/api/token/", data={"username": email, "password": PASSWORD}, timeout=10
    ).json()["access_token"]
    item = httpx.post(
        f"{base}/api/items/",
        json={"name": "Counted", "price": 3},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert item.status_code == 201, item.text
    return token, item.json()["id"]


def test_the_metrics_are_the_sums_over_the_workers_by_route_template(
    gunicorn: Gunicorn, signed_in: tuple[str, int]
) -> None:
    token, item_id = signed_in
    url = f"http://127.0.0.1:{gunicorn.port}/api/items/{item_id}"
    before = scrape(gunicorn)
    counted_before = before.get(
        (
            "app_http_requests_total",
            frozenset({("route", ITEM_ROUTE), ("method", "GET"), ("status", "200")}),
        ),
        0.0,
    )

    def one_read(_: int) -> int:
        # A connection each: the kernel hands them to either worker.
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code

    sent = 0
    with ThreadPoolExecutor(8) as threads:
        while sent < 400:
            assert set(threads.map(one_read, range(40))) == {200}
            sent += 40
            if all(requests_counted_by(gunicorn, pid) > 0 for pid in gunicorn.workers):
                break
    per_worker = [requests_counted_by(gunicorn, pid) for pid in gunicorn.workers]
    assert all(count > 0 for count in per_worker), f"one worker served all: {per_worker}"

    for unknown in ("/nope/1", "/nope/2", f"/api/items/{item_id}/nope"):
        assert (
            httpx.get(f"http://127.0.0.1:{gunicorn.port}{unknown}", timeout=10).status_code == 404
        )

    samples = scrape(gunicorn)
    counted = value(
        samples, "app_http_requests_total", route=ITEM_ROUTE, method="GET", status="200"
    )
    assert counted - counted_before == sent
    assert counted == sum(per_worker), "the master's figure is the workers' sum"
    assert (
        value(samples, "app_http_request_duration_seconds_count", route=ITEM_ROUTE, method="GET")
        >= sent
    )
    routes = {
        dict(labels).get("route") for name, labels in samples if name == "app_http_requests_total"
    }
    assert "unmatched" in routes
    assert not any(route and "nope" in route for route in routes), routes
    assert all(route is None or route == "unmatched" or route.startswith("/") for route in routes)
    assert not any(route and str(item_id) in route for route in routes)

    # Both pools, both workers (livesum), sampled when each worker started.
    assert value(samples, "app_db_pool_size", pool="reads") == WORKERS * READ_POOL_SIZE
    assert value(samples, "app_db_pool_size", pool="transactions") > 0
    for pool_name in ("reads", "transactions"):
        assert (
            0
            <= value(samples, "app_db_pool_in_use", pool=pool_name)
            <= value(samples, "app_db_pool_size", pool=pool_name)
        )
        assert value(samples, "app_db_pool_timeouts_total", pool=pool_name) == 0
    assert value(samples, "app_db_pool_waiting", pool="reads") >= 0
    assert value(samples, "app_password_hashing_busy") >= 0
    assert value(samples, "app_password_hashing_queued") >= 0
    assert value(samples, "app_password_hashing_refused_total") == 0
    assert value(samples, "app_logins_total", method="password", outcome="succeeded") >= 1
    assert value(samples, "app_logins_total", method="password", outcome="refused") >= 1
    assert value(samples, "app_mail_outbox_queued") >= 0
    assert value(samples, "app_mail_outbox_oldest_age_seconds") >= 0
    assert value(samples, "app_mail_deliveries_total", outcome="given_up") == 0
    assert value(samples, "app_sweep_runs_total", outcome="failed") == 0


def test_the_apps_own_port_does_not_answer_metrics(gunicorn: Gunicorn) -> None:
    answer = httpx.get(f"http://127.0.0.1:{gunicorn.port}/metrics", timeout=10)
    assert answer.status_code == 404
    assert "app_http_requests_total" not in answer.text


def test_the_metrics_port_answers_nothing_else(gunicorn: Gunicorn) -> None:
    answer = httpx.get(f"http://127.0.0.1:{gunicorn.metrics_port}/", timeout=10)
    assert answer.status_code == 404


def test_the_trusted_proxys_request_id_comes_back(gunicorn: Gunicorn) -> None:
    """The suite's gunicorn trusts 127.0.0.1 (FORWARDED_ALLOW_IPS' default): the
    id it sends is the request's (post_worker_init marked the request)."""
    answer = httpx.get(
        f"http://127.0.0.1:{gunicorn.port}/api/health",
        headers={"X-Request-Id": "from-the-proxy-0001"},
        timeout=10,
    )
    assert answer.headers["X-Request-Id"] == "from-the-proxy-0001"
    assert os.getpid() != gunicorn.master
