"""Gunicorn settings for the container (read from the working directory, /srv).

Gunicorn is the process manager; each worker is a uvicorn event loop. Every knob
comes from the environment so compose/.env can tune it without a rebuild.
"""

import os

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

# ACCESS_LOG: "-" (stdout, the default), a file path, or "off" (`make bench`
# measures the app, not its logging; uvicorn then skips access logging entirely).
_access_log = os.environ.get("ACCESS_LOG", "-")
accesslog = None if _access_log.lower() == "off" else _access_log
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
