"""What the app tells its operators: the request id (request_id.py), the log
(logs.py), Prometheus metrics (metrics.py, served by gunicorn's master:
metrics_server.py), the middleware that observes each request (requests.py), and
OpenTelemetry traces, set up only when on (tracing.py)."""
