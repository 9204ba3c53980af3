"""`GET /api/care`: the state of proactive care for managers and admins.

The counts of the outbox by status (pending, deferred, sending, sent, failed, skipped) and each
channel's health (failures in a row, paused), from `crm_store.outbox.care_status`: the same
figures as `crmbot care status`. Managers and admins only: 401 without a sign-in, 403 for other
roles. Counts only, no message and no person.
"""

from typing import Final

import anyio.to_thread
from fastapi import APIRouter
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.schemas.care import CareStatusOut
from api.schemas.common import ErrorDetail
from crm_store import clock
from crm_store.access import require_role
from crm_store.outbox import care_status

CARE_ROLES: Final = ("manager", "admin")
"""The staff roles that may see the state of proactive care."""

router = APIRouter(prefix="/care", tags=["care"])


def _status(factory: sessionmaker[Session]) -> CareStatusOut:
    with factory() as session:
        return CareStatusOut.model_validate(care_status(session, now=clock.now()))


@router.get(
    "",
    summary="Proactive care: messages by status and the channels' health",
    response_model=CareStatusOut,
    responses={**AUTH_ERRORS, 403: {"model": ErrorDetail, "description": "Neither a manager nor an admin."}},
)
async def status(staff: StaffDep, sessions: SessionFactoryDep) -> CareStatusOut:
    """What `crmbot care status` shows: pending, deferred, sent, failed, skipped, paused channels."""
    require_role(staff, *CARE_ROLES)
    return await anyio.to_thread.run_sync(_status, sessions)
