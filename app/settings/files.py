"""NAME_FILE: any setting read from a file (Docker secrets, Kubernetes', systemd's
credentials)."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
)


class SettingFileError(ValueError):
    """A NAME_FILE that cannot be used. The message names the variable and the
    path, never the file's content (it is a secret)."""


def read_setting_file(name: str, path: str | Path) -> str:
    """NAME_FILE's content is NAME's value, less the one newline that
    `echo value > file` ends it with; nothing else is stripped (a password may
    end in spaces)."""
    variable = f"{name}_FILE"
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingFileError(f"{variable}: cannot read {path}: {reason}") from None
    except UnicodeDecodeError:
        raise SettingFileError(f"{variable}: {path} is not UTF-8 text") from None
    for newline in ("\r\n", "\n"):
        if text.endswith(newline):
            return text.removesuffix(newline)
    return text


def _is_set(value: object) -> bool:
    """As the environment reads (env_ignore_empty): empty is not set."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is not None and value != "" and value != []


class SettingFiles(PydanticBaseSettingsSource):
    """Docker secrets (and Kubernetes', systemd's credentials) arrive as files:
    as in the official images, NAME_FILE names a file whose content is NAME's
    value, for every setting. Read once, when the settings load, wherever NAME
    itself may be given: arguments, the environment, `.env` (first wins). Both
    NAME and NAME_FILE set is refused: which one should win is ambiguous."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: InitSettingsSource,
        env: EnvSettingsSource,
        dotenv: EnvSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        # The environment's and .env's names are lower case (not case sensitive).
        self._given: list[Mapping[str, Any]] = [init.init_kwargs, env.env_vars, dotenv.env_vars]

    def _first(self, name: str) -> Any:
        for given in self._given:
            for key in (name, name.lower()):
                if _is_set(given.get(key)):
                    return given[key]
        return None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            path = self._first(f"{name}_FILE")
            if path is None:
                continue
            if self._first(name) is not None:
                raise SettingFileError(
                    f"{name} and {name}_FILE are both set (environment, .env or "
                    "arguments): keep one"
                )
            values[name] = read_setting_file(name, path)
        return values
