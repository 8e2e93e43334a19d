"""What the app tells its operators: metrics, logs, traces (docs/operations.md)."""

from typing import ClassVar, Literal

from pydantic import field_validator

from app.settings.base import SettingsGroup
from app.settings.declaration import setting


class ObservabilitySettings(SettingsGroup):
    """Metrics are served by gunicorn's master on a port Traefik never routes; traces
    go out only when an OTLP endpoint is set."""

    TITLE: ClassVar[str] = "Observability (metrics, logs, traces)"

    METRICS_PORT: int = setting(
        9100,
        "Port of the Prometheus metrics (GET /metrics), served by gunicorn's master "
        "for all its workers; 0: no metrics. Never published nor routed by Traefik: "
        "only the proxy network reaches it.",
        ge=0,
        le=65535,
    )
    LOG_FORMAT: Literal["", "json", "text"] = setting(
        "",
        "'json': one JSON object a line (time, level, logger, request_id, message, "
        "and route, status, duration on request lines); 'text': lines for a "
        "terminal. Empty: text when ENVIRONMENT is local or test, else json.",
    )
    ACCESS_LOG: str = setting(
        "-",
        "The app's line per request (method, route, status, duration, request id): "
        "'-' (on, with the rest of the log on stderr) or 'off'. Gunicorn's own access "
        "log is off: this line replaces it.",
    )
    OTEL_EXPORTER_OTLP_ENDPOINT: str = setting(
        "",
        "Traces (OpenTelemetry) go to this OTLP/HTTP endpoint, e.g. "
        "http://otel-collector:4318. Empty: no tracing (nothing of OpenTelemetry's "
        "SDK is even imported). The SDK's other OTEL_* variables (headers, sampler) "
        "are read from the environment as usual.",
    )
    OTEL_TRACES_EXPORTER: Literal["otlp", "none"] = setting(
        "otlp", "'none' turns tracing off while keeping the endpoint."
    )
    OTEL_SDK_DISABLED: bool = setting(False, "'true' turns tracing off.")
    OTEL_SERVICE_NAME: str = setting("fastapi-stack", "The service name traces carry.")

    @field_validator("ACCESS_LOG")
    @classmethod
    def _access_log_switch(cls, value: str) -> str:
        """'-' or 'off' (any case); a file path, gunicorn's old option, means on."""
        return "off" if value.strip().lower() == "off" else "-"

    def log_format_for(self, environment: str) -> str:
        """LOG_FORMAT, else text on a developer's machine (and in tests) and JSON
        wherever a log collector reads it."""
        return self.LOG_FORMAT or ("text" if environment in ("local", "test") else "json")

    @property
    def access_log(self) -> bool:
        return self.ACCESS_LOG != "off"

    @property
    def tracing(self) -> bool:
        return bool(
            self.OTEL_EXPORTER_OTLP_ENDPOINT
            and self.OTEL_TRACES_EXPORTER == "otlp"
            and not self.OTEL_SDK_DISABLED
        )
