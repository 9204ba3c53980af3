"""Response bodies of `/health`."""

from typing import Literal

from pydantic import BaseModel, Field


class ComponentHealth(BaseModel):
    """Whether one component answers."""

    ok: bool
    detail: str | None = Field(
        default=None, description="Why the component is not ok, or a caveat when it is."
    )


class DatabaseHealth(ComponentHealth):
    """Whether the CRM database answers `SELECT 1`."""

    dialect: str | None = None


class RasaHealth(ComponentHealth):
    """Whether Rasa answers and has a model loaded (absent when it cannot be told)."""

    model_loaded: bool | None = None


class HealthComponents(BaseModel):
    """Per-component health."""

    database: DatabaseHealth
    rasa: RasaHealth
    action_server: ComponentHealth


HealthStatus = Literal["ok", "starting", "degraded"]


class HealthReport(BaseModel):
    """Overall health: `ok` only when every component is ok."""

    status: HealthStatus
    components: HealthComponents
