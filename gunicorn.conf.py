"""Gunicorn settings for the container (read from the working directory, /srv).

Gunicorn is the process manager; each worker is a uvicorn event loop. Every knob
comes from the environment so compose/.env can tune it without a rebuild.
"""

import contextlib
import gc
import importlib
import os
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

# The master collects no garbage from here on (it loads this file before it
# imports the app): what importing frees by collection leaves holes in the pages
# the workers will share, and each worker's first objects, placed in those holes,
# would make a private copy of every such page. Python's own advice for fork
# without exec (the gc module's docs, gc.freeze): disable early in the parent,
# freeze before the fork (pre_fork), enable in the child (post_fork). The
# master's own loop makes next to no cycles.
gc.disable()

bind = "0.0.0.0:8000"
worker_class = "uvicorn_worker.UvicornWorker"
# 2 per container suits a 2-core host; scale out with `--scale app=N` instead.
# What each costs in memory, and how many fit a host: docs/performance.md.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

# The master imports the app once and forks the workers from it, so they share
# its pages (code, routes, schemas: most of a worker) instead of each importing
# its own copy. Safe because importing app.main opens no socket, starts no thread
# and creates no loop or pool: the database pools, the mail sender and the sweep
# start in the lifespan, in each worker after the fork (tests/test_preloaded_workers.py).
# The costs: a release that fails to import stops the master at start (loudly);
# SIGHUP restarts the workers on the code the master loaded, it no longer reloads
# new code. Deploys replace the container, so neither matters here.
preload_app = True

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

# The app's settings of its log and metrics, read as the app reads them (the
# environment, then .env): the same values in the master and in every worker.
from app.observability.logs import gunicorn_log_config  # noqa: E402
from app.settings.general import GeneralSettings  # noqa: E402
from app.settings.observability import ObservabilitySettings  # noqa: E402

_general = GeneralSettings()
_observability = ObservabilitySettings()

# No access log of gunicorn's (uvicorn's): the app writes one line per request
# itself (ACCESS_LOG), with what uvicorn's line lacks: the route template, the
# duration and the request id (app/observability/requests.py). gunicorn's own
# log in the app's format (LOG_FORMAT): JSON in production.
accesslog = None
errorlog = "-"
loglevel = _general.LOG_LEVEL.lower()
logconfig_dict = gunicorn_log_config(_observability.log_format_for(_general.ENVIRONMENT))

# --- Metrics (METRICS_PORT; 0: none) --------------------------------------------
# prometheus-client's multiprocess mode: every worker writes its values to files
# in PROMETHEUS_MULTIPROC_DIR, and the master serves their sums on METRICS_PORT
# (app/observability/metrics_server.py says why the master). The directory is
# set before the app is imported (preload_app), as prometheus-client reads it
# then, and emptied: values of a previous run must not be added to this one's.
# On tmpfs: the root filesystem is read-only.
metrics_port = _observability.METRICS_PORT
_metrics_dir: str | None = None
_made_metrics_dir = False
if metrics_port and __name__ == "__config__":  # run by gunicorn, not read by a test
    _metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not _metrics_dir:
        _metrics_dir = tempfile.mkdtemp(prefix="app-metrics-", dir="/dev/shm")
        _made_metrics_dir = True
    os.makedirs(_metrics_dir, exist_ok=True)
    for _stale in os.listdir(_metrics_dir):
        if _stale.endswith(".db"):
            os.remove(os.path.join(_metrics_dir, _stale))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

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


# Set by when_ready in the master; each worker closes its inherited copies.
_drain_probe: ThreadingHTTPServer | None = None
_metrics_server: ThreadingHTTPServer | None = None


# Make the preloaded objects immortal before the first fork (app/immortal.py):
# workers then share their pages for good. SHARE_PRELOADED_OBJECTS=false turns it off.
share_preloaded_objects = os.environ.get("SHARE_PRELOADED_OBJECTS", "true").lower() != "false"
_preloaded_objects_shared = False


def pre_fork(server: "Arbiter", worker: "Worker") -> None:
    """In the master, before each fork: freeze every object the workers inherit
    out of the garbage collector's reach. Otherwise every collection in a worker
    writes to their headers and the kernel copies each page it touches: the
    shared app would become a private copy per worker within minutes of traffic.
    Before the first fork, also make them immortal, so that a worker's use of them
    (reference counts) does not copy their pages either."""
    import_what_a_worker_imports()
    global _preloaded_objects_shared
    if share_preloaded_objects and not _preloaded_objects_shared:
        _preloaded_objects_shared = True
        share_preloaded(server)
    gc.freeze()


def share_preloaded(server: "Arbiter") -> None:
    from app.immortal import make_preloaded_objects_immortal, why_not_supported

    reason = why_not_supported()
    if reason is not None:
        server.log.info("preloaded objects left mortal: %s", reason)
        return
    started = time.monotonic()
    made = make_preloaded_objects_immortal()
    server.log.info(
        "made %d preloaded objects immortal in %.2f s", made, time.monotonic() - started
    )


def import_what_a_worker_imports() -> None:
    """What a uvicorn worker imports once it runs (its event loop, HTTP parser,
    protocols and lifespan; anyio's asyncio backend; FastAPI's lifespan wrapper),
    imported in the master instead, to be shared: ~2 MB less per worker."""
    for module in (
        "uvloop",
        "httptools",
        "uvicorn.loops.auto",
        "uvicorn.loops.uvloop",
        "uvicorn.protocols.http.auto",
        "uvicorn.protocols.http.httptools_impl",
        "uvicorn.protocols.websockets.auto",
        "uvicorn.lifespan.on",
        "anyio._backends._asyncio",
        "concurrent.futures.thread",
        "fastapi.telemetry._runtime",
    ):
        with contextlib.suppress(ImportError):  # not there: the worker goes without
            importlib.import_module(module)


def post_fork(server: "Arbiter", worker: "Worker") -> None:
    """In each worker: garbage is collected again (of its own objects; the
    master's are frozen), and the master's drain probe is the master's alone."""
    gc.enable()
    for server_of_the_master in (_drain_probe, _metrics_server):
        if server_of_the_master is not None:
            server_of_the_master.socket.close()


def post_worker_init(worker: "Worker") -> None:
    """Each worker's app learns whether a request came through the trusted proxy
    (FORWARDED_ALLOW_IPS) before uvicorn puts the client's address in place of the
    proxy's: it then takes the proxy's request id (app/observability/proxy.py).
    uvicorn's own proxy handling is applied inside, with the same addresses."""
    from app.observability.proxy import behind_proxy

    worker.config.proxy_headers = False
    worker.wsgi = behind_proxy(worker.wsgi, forwarded_allow_ips)


def child_exit(server: "Arbiter", worker: "Worker") -> None:
    """A dead worker's live gauges (pools in use, hashes running) stop counting;
    its counters keep their values, as counters must."""
    if _metrics_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _metrics_dir)  # type: ignore[no-untyped-call]


def on_exit(server: "Arbiter") -> None:
    """A directory made for this run goes with it; one given is left (emptied at
    the next start)."""
    if _metrics_dir is not None and _made_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def when_ready(server: "Arbiter") -> None:
    global _drain_probe, _metrics_server
    if _metrics_dir is not None:
        from app.config import get_settings
        from app.observability.metrics_server import exposition, start_metrics_server

        settings, metrics_dir = get_settings(), _metrics_dir
        _metrics_server = start_metrics_server(
            metrics_port, lambda: exposition(metrics_dir, settings)
        )
    draining = threading.Event()

    class DrainProbe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503 if draining.is_set() else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Silent: Traefik probes every second."""

    probe = _drain_probe = ThreadingHTTPServer(("0.0.0.0", drain_probe_port), DrainProbe)  # noqa: S104
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
