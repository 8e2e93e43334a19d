"""GET /metrics on METRICS_PORT, served by gunicorn's master (gunicorn.conf.py).

Why the master: it outlives its workers and sees every worker's files in
PROMETHEUS_MULTIPROC_DIR, so one scrape gives the container's sums, whichever
worker would have answered; a worker busy or restarting never loses a scrape; and
the port is a listener of its own, which Traefik neither routes nor knows.

The mail outbox's gauges are read from the database here, at scrape time (one
indexed query every scrape interval), not kept up to date by every request."""

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.config import Settings

logger = logging.getLogger(__name__)

OUTBOX_QUERY = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL
"""
QUERY_TIMEOUT_SECONDS = 2


class OutboxCollector(Collector):
    """Mails waiting to go out, and how long the oldest has waited; nothing (and a
    warning) when the database does not answer: the scrape goes on."""

    def __init__(self, settings: Settings) -> None:
        self._conninfo = (
            settings.database_url()
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

    def collect(self) -> Iterator[Metric]:
        try:
            with psycopg.connect(
                self._conninfo,
                connect_timeout=QUERY_TIMEOUT_SECONDS,
                options=f"-c statement_timeout={QUERY_TIMEOUT_SECONDS * 1000}",
                autocommit=True,
            ) as connection:
                row = connection.execute(OUTBOX_QUERY).fetchone()
        except psycopg.Error as exc:
            logger.warning("metrics: the mail outbox could not be read: %s", exc)
            return
        assert row is not None
        queued, oldest_age = row
        yield GaugeMetricFamily(
            "app_mail_outbox_queued", "Mails queued, not yet sent nor given up.", value=queued
        )
        yield GaugeMetricFamily(
            "app_mail_outbox_oldest_age_seconds",
            "How long the oldest queued mail has waited (0: none queued).",
            value=float(oldest_age),
        )


def exposition(multiprocess_dir: str, settings: Settings) -> bytes:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    registry.register(OutboxCollector(settings))
    try:
        return generate_latest(registry)
    finally:
        # The master collects no garbage by itself (gunicorn.conf.py): what a
        # scrape left in cycles goes now. Frozen objects are not even looked at.
        gc.collect(0)


def start_metrics_server(port: int, render: Callable[[], bytes]) -> ThreadingHTTPServer:
    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Silent: Prometheus scrapes every few seconds."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Metrics)  # noqa: S104 (the proxy network only)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
