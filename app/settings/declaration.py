"""How a setting is declared, and what can be read back from a declaration."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic.fields import FieldInfo

_EXAMPLE = "example"
_REQUIRED_IN_PRODUCTION = "required_in_production"


def setting(
    default: Any,
    doc: str,
    *,
    example: str | None = None,
    required_in_production: bool = False,
    **constraints: Any,
) -> Any:
    """A field with its meaning. `example` is the value `.env.example` shows where
    it differs from the default (an example password, a CORS origin);
    `required_in_production`: the default is not fit for production, so the deploy
    refuses to go on without a value."""
    extra: dict[str, Any] = {_REQUIRED_IN_PRODUCTION: required_in_production}
    if example is not None:
        extra[_EXAMPLE] = example
    return Field(default, description=doc, json_schema_extra=extra, **constraints)


@dataclass(frozen=True)
class Declared:
    name: str
    group: str
    doc: str
    value: str  # as `.env.example` writes it
    secret: bool
    required_in_production: bool


def _is_secret(field: FieldInfo) -> bool:
    return "SecretStr" in str(field.annotation)


def env_text(value: object) -> str:
    """A value as it is written in `.env`: durations as ISO 8601 (or seconds under a
    minute), lists comma-separated, booleans in lower case, no value empty."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, timedelta):
        return _duration_text(value)
    if isinstance(value, list):
        return ",".join(env_text(entry) for entry in value)
    return str(value)


def _duration_text(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("D", 86400), ("H", 3600), ("M", 60)):
        if seconds >= size and seconds % size == 0:
            return f"P{int(seconds // size)}D" if unit == "D" else f"PT{int(seconds // size)}{unit}"
    return env_text(seconds)


def declared(group: type[BaseModel], title: str) -> Iterator[Declared]:
    """The settings `group` declares itself (not those it inherits), in order."""
    own = group.__annotations__
    for name, field in group.model_fields.items():
        if name not in own:
            continue
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or field.description is None:
            raise TypeError(f"{group.__name__}.{name} is not declared with setting()")
        example = extra.get(_EXAMPLE)
        yield Declared(
            name=name,
            group=title,
            doc=field.description,
            value=str(example) if example is not None else env_text(field.default),
            secret=_is_secret(field),
            required_in_production=bool(extra[_REQUIRED_IN_PRODUCTION]),
        )
