"""Typed settings of the HTTP API, read once from `CRM_*` environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The same `.env` that crm_store reads, so one file configures every app-side process.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ApiSettings(BaseSettings):
    """Where the API finds Rasa and the action server, and the limits it enforces.

    Every field is read from the environment variable `CRM_<FIELD_NAME>` (for example
    `CRM_RASA_URL`), or from `.env` at the project root. The database URL is not here:
    `crm_store.db` owns `CRM_DATABASE_URL`.
    """

    model_config = SettingsConfigDict(
        env_prefix="CRM_", env_file=PROJECT_ROOT / ".env", env_ignore_empty=True, extra="ignore"
    )

    rasa_url: str = "http://127.0.0.1:5005"
    action_server_url: str = "http://127.0.0.1:5055"
    # Rasa's HTTP API (`/status`) needs this when Rasa runs with `--auth-token`; the chat
    # webhook does not.
    rasa_token: SecretStr | None = None
    # Bearer token of the staff endpoints (`/api/handoffs`); while unset they answer 503.
    staff_token: SecretStr | None = None
    max_message_chars: int = Field(default=2000, gt=0)
    # A cold Rasa turn that calls several actions can take seconds; 30 s leaves room
    # without letting a hung Rasa hold a browser request forever.
    rasa_timeout_s: float = Field(default=30.0, gt=0)
    # Health checks must answer fast even when a component hangs, so they get their own
    # short timeout.
    health_timeout_s: float = Field(default=2.0, gt=0)
    # Rasa needs about 46 s to load a model (DESIGN §8); during this window after the API
    # starts, a failing component is reported as "starting" rather than "degraded".
    health_startup_grace_s: float = Field(default=120.0, ge=0)


@lru_cache
def get_api_settings() -> ApiSettings:
    """Return the process-wide settings, read from the environment on first use."""
    return ApiSettings()
