"""The app's Prometheus metrics (docs/operations.md lists what each means).

Under gunicorn they are prometheus-client's multiprocess metrics: each worker
writes its values to files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets and
empties it before the app is imported), and the master adds up every worker's
files when scraped (app/observability/metrics_server.py). Recording is the same
either way; without that directory the values stay in the process.

Gauges of a worker's state (pools, the hashing gate) are `livesum`: the sum over
the workers alive. Labels are bounded: a route is its template, never a path."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "app_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "app_http_request_duration_seconds",
    "Time from the request's arrival to its last response byte, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

POOL_SIZE = Gauge(
    "app_db_pool_size",
    "Connections a pool may hold (the transactions' pool: size plus overflow).",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "app_db_pool_in_use",
    "Connections handed out by a pool, sampled every few seconds.",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "app_db_pool_waiting",
    "Requests waiting for a connection of the read pool, sampled every few seconds.",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_TIMEOUTS = Counter(
    "app_db_pool_timeouts",
    "Requests answered 503 because no connection of the pool came in time.",
    ["pool"],
)

HASHING_BUSY = Gauge(
    "app_password_hashing_busy",
    "Password hashes running now (at most PASSWORD_HASH_THREADS a worker).",
    multiprocess_mode="livesum",
)
HASHING_QUEUED = Gauge(
    "app_password_hashing_queued",
    "Password hashes waiting for a thread (at most PASSWORD_HASH_QUEUE a worker).",
    multiprocess_mode="livesum",
)
HASHING_REFUSED = Counter(
    "app_password_hashing_refused",
    "Requests refused 503 because the hashing gate was full.",
)

LOGINS = Counter(
    "app_logins",
    "Sign-in attempts by proof (password, passkey, oidc, totp...) and outcome: "
    "succeeded, second_step, refused, throttled, email_not_verified, busy.",
    ["method", "outcome"],
)

MAIL_DELIVERIES = Counter(
    "app_mail_deliveries",
    "Mail delivery attempts by outcome: sent, retry (will be tried again), given_up.",
    ["outcome"],
)

SWEEP_RUNS = Counter(
    "app_sweep_runs",
    "Sweeps by outcome: swept, skipped (another process held the lock), failed.",
    ["outcome"],
)
SWEEP_ROWS_REMOVED = Counter("app_sweep_rows_removed", "Rows the sweep deleted, by kind.", ["kind"])
SWEEP_LAST_SUCCESS = Gauge(
    "app_sweep_last_success_timestamp_seconds",
    "Unix time of the last sweep that ran to its commit.",
    multiprocess_mode="max",
)

# Series that exist from the start at 0, so a rate or an alert on them has data
# before the first event.
for _pool in ("transactions", "reads"):
    POOL_TIMEOUTS.labels(_pool)
for _outcome in ("sent", "retry", "given_up"):
    MAIL_DELIVERIES.labels(_outcome)
for _outcome in ("swept", "skipped", "failed"):
    SWEEP_RUNS.labels(_outcome)
