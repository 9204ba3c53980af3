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


class ReplicaHealth(BaseModel):
    """One Rasa replica of the scale profile and the action server it calls."""

    rasa_url: str
    rasa: RasaHealth
    action_server: ComponentHealth


class HealthComponents(BaseModel):
    """Per-component health.

    With several Rasa replicas, `rasa` and `action_server` are ok when at least one replica's is,
    and `replicas` tells each one.
    """

    database: DatabaseHealth
    rasa: RasaHealth
    action_server: ComponentHealth
    replicas: list[ReplicaHealth] | None = None


HealthStatus = Literal["ok", "starting", "degraded"]


class HealthReport(BaseModel):
    """Overall health: `ok` only when every component (every replica) is ok."""

    status: HealthStatus
    components: HealthComponents
