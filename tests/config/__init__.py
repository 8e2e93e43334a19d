from app.config import Settings


def settings(**values: object) -> Settings:
    """Settings from these values alone (no .env; the environment is cleared by
    conftest.py)."""
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]
