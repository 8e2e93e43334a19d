"""Value types the settings share: durations as the environment writes them,
browser origins, Postgres' host:port."""

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field

DEFAULT_POSTGRES_PORT = 5432


def _seconds_or_iso(value: object) -> object:
    """Environment values are strings: "900" means seconds, "PT15M" is ISO 8601."""
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        return float(value)
    return value


PositiveDuration = Annotated[timedelta, BeforeValidator(_seconds_or_iso), Field(gt=timedelta(0))]
Duration = Annotated[timedelta, BeforeValidator(_seconds_or_iso), Field(ge=timedelta(0))]


def origin(entry: str) -> str:
    """An origin as browsers send it in `Origin`: scheme://host[:port], no path
    (a trailing slash is dropped: it would never match)."""
    origin = entry.rstrip("/")
    parts = urlsplit(origin)
    try:
        parts.port  # noqa: B018 (raises ValueError unless a number in range)
    except ValueError:
        parts = parts._replace(scheme="")  # refused below
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "*" in origin
        or "@" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"BACKEND_CORS_ORIGINS: {entry!r} is not an origin: give scheme://host[:port], "
            "no path and no wildcard (credentialed CORS needs explicit origins)"
        )
    return origin


def split_host_port(value: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` → (host, port)."""
    text = value.strip()
    if "://" in text or "@" in text or "/" in text:
        raise ValueError("POSTGRES_URL is host:port (e.g. localhost:5432), not a full URL")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError("POSTGRES_URL has no host")
    if not port_text:
        return host, DEFAULT_POSTGRES_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"POSTGRES_URL has an invalid port: {port_text!r}")
    return host, int(port_text)
