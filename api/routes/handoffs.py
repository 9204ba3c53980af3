"""`/api/handoffs`: staff take over conversations the bot handed to a person.

The bot opens a case (`actions/handoff.py`) and, while it is open, `/api/chat` keeps the
conversation away from Rasa (`crm_store.handoff.relay_turn`). Staff list the open cases with their
transcript, reply (the customer sees the reply in the chat) and close the case, which gives the
conversation back to the bot and asks the customer for a 1–5 rating.

The hand-off service decides and refuses (an unknown case is `NotFound`, a closed one
`Conflict("handoff_closed")`); the routes let its errors through to `api.errors`, which answers
404 and 409 with the Chinese message of the code.

Every endpoint needs a signed-in employee (`Authorization: Bearer <token>`, `api.auth`) whose role
is one of `HANDOFF_ROLES`: service agents answer customers, managers and admins stand in for them.
Salespeople do not: a hand-off transcript shows any customer's words and phone unmasked, beyond the
customers they own. Replies and closes are audited with the employee's id.
"""

import logging
from functools import partial
from typing import Annotated, Final

import anyio.to_thread
from fastapi import APIRouter, Path, status
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.relay import handoff_words
from api.schemas.common import ErrorDetail
from api.schemas.handoffs import HandoffCaseOut, StaffReplyIn, StaffReplyOut
from crm_store.access import Actor, require_role
from crm_store.handoff import (
    HandoffCaseView,
    StaffReply,
    add_staff_reply,
    close_handoff,
    list_open_handoffs,
)

logger = logging.getLogger(__name__)

# The largest id a 32-bit INTEGER primary key holds; larger ids are refused with 422, not a DB error.
_MAX_CASE_ID: Final = 2**31 - 1

CaseId = Annotated[int, Path(ge=1, le=_MAX_CASE_ID, description="The hand-off case id.")]

HANDOFF_ROLES: Final = ("service", "manager", "admin")
"""The staff roles that may read and answer hand-off cases."""

_ROLE_ERRORS: dict[int | str, dict[str, object]] = {
    **AUTH_ERRORS,
    403: {"model": ErrorDetail, "description": "The employee's role does not answer hand-offs."},
}
_CASE_ERRORS: dict[int | str, dict[str, object]] = {
    **_ROLE_ERRORS,
    404: {"model": ErrorDetail, "description": "No such case."},
    409: {"model": ErrorDetail, "description": "The case is already closed."},
}

router = APIRouter(prefix="/handoffs", tags=["handoffs"])


def _list_open(factory: sessionmaker[Session]) -> list[HandoffCaseView]:
    with factory() as session:
        return list_open_handoffs(session)


def _handoff_staff(actor: Actor) -> str:
    """The employee id of an actor allowed to handle hand-offs (Forbidden "role_not_allowed" otherwise)."""
    require_role(actor, *HANDOFF_ROLES)
    assert actor.employee_id is not None  # require_role admits signed-in employees only
    return actor.employee_id


def _reply(factory: sessionmaker[Session], case_id: int, text: str, staff_id: str) -> StaffReply:
    with factory() as session:
        reply = add_staff_reply(session, case_id=case_id, text=text, staff_id=staff_id)
        session.commit()
    return reply


def _close(factory: sessionmaker[Session], case_id: int, staff_id: str) -> HandoffCaseView:
    closing = handoff_words().closing
    with factory() as session:
        # The closing words go out as the case's last message; delivering them adds the rating buttons.
        view = close_handoff(session, case_id=case_id, staff_id=staff_id, closing_text=closing)
        session.commit()
    return view


@router.get(
    "",
    summary="List the open hand-off cases, the longest waiting first",
    response_model=list[HandoffCaseOut],
    responses=_ROLE_ERRORS,
)
async def list_cases(staff: StaffDep, sessions: SessionFactoryDep) -> list[HandoffCaseOut]:
    """Every open case with its transcript (customer, bot and staff lines, oldest first).

    The transcript is shown unmasked: staff need the customer's own words, phone numbers included.
    """
    _handoff_staff(staff)
    views = await anyio.to_thread.run_sync(_list_open, sessions)
    return [HandoffCaseOut.model_validate(view) for view in views]


@router.post(
    "/{case_id}/reply",
    summary="Reply to the customer of an open case",
    status_code=status.HTTP_201_CREATED,
    response_model=StaffReplyOut,
    responses=_CASE_ERRORS,
)
async def reply(
    case_id: CaseId, body: StaffReplyIn, staff: StaffDep, sessions: SessionFactoryDep
) -> StaffReplyOut:
    """Queue the reply; the customer's chat shows it on its next poll or message, exactly once."""
    staff_id = _handoff_staff(staff)
    queued = await anyio.to_thread.run_sync(partial(_reply, sessions, case_id, body.text, staff_id))
    logger.info("staff replied to hand-off case %s", case_id)
    return StaffReplyOut.model_validate(queued)


@router.post(
    "/{case_id}/close",
    summary="Close an open case and give the conversation back to the bot",
    response_model=HandoffCaseOut,
    responses=_CASE_ERRORS,
)
async def close(case_id: CaseId, staff: StaffDep, sessions: SessionFactoryDep) -> HandoffCaseOut:
    """Send the closing message (with 1–5 rating buttons) and close the case.

    The customer's next message goes to the bot again; the rating they choose is stored on the case
    by the bot's rating action.
    """
    staff_id = _handoff_staff(staff)
    view = await anyio.to_thread.run_sync(partial(_close, sessions, case_id, staff_id))
    logger.info("staff closed hand-off case %s", case_id)
    return HandoffCaseOut.model_validate(view)
