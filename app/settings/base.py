"""What every group of settings shares: one `.env`, the environment, NAME_FILE."""

from typing import ClassVar

from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.settings.files import SettingFiles


class SettingsGroup(BaseSettings):
    """A group's TITLE and docstring head its section of `.env.example`."""

    TITLE: ClassVar[str]

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        # A settings error names the setting, never echoes the values: they hold keys.
        hide_input_in_errors=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(init_settings, InitSettingsSource)
        assert isinstance(env_settings, EnvSettingsSource)
        assert isinstance(dotenv_settings, EnvSettingsSource)
        files = SettingFiles(settings_cls, init_settings, env_settings, dotenv_settings)
        return files, init_settings, env_settings, dotenv_settings, file_secret_settings
