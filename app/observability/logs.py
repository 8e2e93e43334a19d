"""The log: JSON objects one a line in production, plain lines locally; every line
carries the id of the request it was written for (app/observability/request_id.py).

Nothing here decides what is safe to log: a secret never reaches a log call
(tests/observability/test_logs.py holds a login flow's lines to that)."""

import json
import logging
import sys
import time
from typing import Any

from app.observability.request_id import current_request_id

# Fields a request line adds (app/observability/requests.py's `extra`).
REQUEST_FIELDS = ("method", "route", "status", "duration_ms", "client")
TEXT_FORMAT = "%(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record; on a handler, so records of
    any logger (SQLAlchemy's, uvicorn's, gunicorn's) get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, request_id,
    message, the request fields when present, and the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", current_request_id.get()),
            "message": record.getMessage(),
        }
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)

    @staticmethod
    def _time(record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


class AppLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The app's handler on the root logger, told apart from others (a test's)."""


def configure_logging(*, level: str, log_format: str) -> None:
    """The root logger writes to stderr in `log_format`, each line with its request
    id. An app created again replaces its own handler, and only that (unlike
    logging.basicConfig, which keeps the first caller's)."""
    handler = AppLogHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, AppLogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def gunicorn_log_config(log_format: str) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its own error log (and uvicorn's, which the
    worker sends there) in the app's format, on stderr."""
    formatter_config: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"app": formatter_config},
        "handlers": {
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "app",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            },
        },
        # gunicorn merges this over its defaults key by key: every key of theirs
        # that names a handler is replaced.
        # The root's handler is the app's own (configure_logging), in each worker.
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }
