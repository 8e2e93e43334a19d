"""What of the stack's request ids and metrics can be read from compose.yaml: Traefik
traces (so it sends the app a traceparent and logs its TraceId), keeps a client's
X-Request-Id in its access log, and never routes to the metrics port."""

from pathlib import Path
from typing import Any

import yaml

from app.settings.observability import ObservabilitySettings

ROOT = Path(__file__).resolve().parents[2]


def services() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    found: dict[str, Any] = compose["services"]
    return found


def test_traefik_traces_every_request_and_logs_the_request_id_header() -> None:
    command = services()["traefik"]["command"]
    assert "--tracing=true" in command
    assert "--accesslog.format=json" in command
    assert "--accesslog.fields.headers.names.X-Request-Id=keep" in command
    [rate] = [flag for flag in command if flag.startswith("--tracing.sampleRate=")]
    assert 0 <= float(rate.split("=", 1)[1]) <= 1


def test_no_router_nor_port_reaches_the_metrics_port() -> None:
    metrics_port = str(ObservabilitySettings.model_fields["METRICS_PORT"].default)
    app = services()["app"]
    assert "ports" not in app, "the app publishes no port: only the proxy network reaches it"
    labels = app.get("labels", {})
    entries = labels.items() if isinstance(labels, dict) else (e.split("=", 1) for e in labels)
    for name, value in entries:
        if "loadbalancer.server.port" in name:
            assert str(value) != metrics_port
        assert metrics_port not in str(value), (name, value)
