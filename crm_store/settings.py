"""Settings of the CRM store, read from the environment (and `.env` at the project root)."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT}/var/crm.db"


class StoreSettings(BaseSettings):
    """Where the CRM database lives."""

    model_config = SettingsConfigDict(
        env_prefix="CRM_", env_file=PROJECT_ROOT / ".env", env_ignore_empty=True, extra="ignore"
    )

    # An absolute path by default, so that every process finds the same file whatever its cwd.
    database_url: str = DEFAULT_DATABASE_URL  # env CRM_DATABASE_URL


def get_store_settings() -> StoreSettings:
    """Read the store settings now (not cached, so a changed environment is seen)."""
    return StoreSettings()
