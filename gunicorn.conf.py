"""Gunicorn settings for the container (read from the working directory, /srv).

Gunicorn is the process manager; each worker is a uvicorn event loop. Every knob
comes from the environment so compose/.env can tune it without a rebuild.
"""

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter

bind = "0.0.0.0:8000"
worker_class = "uvicorn_worker.UvicornWorker"
# 2 per container suits a 2-core host; scale out with `--scale app=N` instead.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

# SIGTERM: stop accepting, let in-flight requests finish for up to this long.
# compose's stop_grace_period must be longer, or Docker SIGKILLs mid-drain.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
# A worker silent for this long is killed and replaced.
timeout = int(os.environ.get("WORKER_TIMEOUT", "60"))
# Longer than Traefik's idle timeout towards backends (60 s, see compose.yaml),
# so Traefik always closes an idle connection first and never reuses a dead one.
keepalive = int(os.environ.get("KEEPALIVE", "75"))

# X-Forwarded-For/-Proto are honoured only from Traefik's network (a CIDR), never
# from anyone: otherwise any client could fake its address and defeat the
# per-address login throttling.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Heartbeat files on tmpfs: the container's root filesystem is read-only.
worker_tmp_dir = "/dev/shm"  # noqa: S108 (a private tmpfs, not a shared /tmp)
# gunicorn's control socket (for `gunicornc`) would be created under $HOME, on the
# container's read-only root, and fail with an error at every start. Nothing
# here uses it: workers and reloads are managed by compose, through signals.
control_socket_disable = True

# ACCESS_LOG: "-" (stdout, the default), a file path, or "off" (`make bench`
# measures the app, not its logging; uvicorn then skips access logging entirely).
_access_log = os.environ.get("ACCESS_LOG", "-")
accesslog = None if _access_log.lower() == "off" else _access_log
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# --- Leaving the load balancer before stopping ---------------------------------
# On SIGTERM gunicorn closes its listener at once, while Traefik keeps the replica
# in rotation until the container has exited: requests sent to it meanwhile would
# be refused (a 502 during every rolling restart). So the master first answers
# 503 on DRAIN_PROBE_PORT, which Traefik's active health check asks every second
# (compose.yaml), keeps serving for DRAIN_SECONDS while Traefik takes the replica
# out, and only then stops gracefully (GRACEFUL_TIMEOUT). Docker's
# stop_grace_period must exceed DRAIN_SECONDS + GRACEFUL_TIMEOUT.
drain_probe_port = int(os.environ.get("DRAIN_PROBE_PORT", "8001"))
drain_seconds = float(os.environ.get("DRAIN_SECONDS", "3"))


def when_ready(server: "Arbiter") -> None:
    draining = threading.Event()

    class DrainProbe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503 if draining.is_set() else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Silent: Traefik probes every second."""

    probe = ThreadingHTTPServer(("0.0.0.0", drain_probe_port), DrainProbe)  # noqa: S104
    threading.Thread(target=probe.serve_forever, name="drain-probe", daemon=True).start()
    stop = server.handle_term

    def handle_term() -> None:
        draining.set()
        server.log.info(
            "SIGTERM: leaving the load balancer for %.1f s, then draining", drain_seconds
        )
        time.sleep(drain_seconds)
        stop()

    server.handle_term = handle_term
