"""`/api/handoffs`: staff take over conversations the bot handed to a person.

The bot opens a case (`actions/handoff.py`) and, while it is open, `/api/chat` keeps the
conversation away from Rasa (`api.relay`). Staff list the open cases with their transcript,
reply (the customer sees the reply in the chat) and close the case, which gives the
conversation back to the bot and asks the customer for a 1–5 rating.

Every endpoint needs `Authorization: Bearer <CRM_STAFF_TOKEN>` (`api.auth`).
"""

import logging
from functools import partial
from typing import Annotated, Final

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Path, status
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, STAFF_ID, StaffDep
from api.deps import SessionFactoryDep
from api.relay import CLOSING_TEXT
from api.schemas.common import ErrorDetail
from api.schemas.handoffs import HandoffCaseOut, StaffReplyIn, StaffReplyOut
from crm_store.handoff import (
    HandoffCaseView,
    StaffReply,
    add_staff_reply,
    close_handoff,
    list_open_handoffs,
)
from crm_store.ids import begin_write
from crm_store.models import HandoffCase
from crm_store.vocab import HANDOFF_STATUS_OPEN

logger = logging.getLogger(__name__)

CASE_NOT_FOUND: Final = "转人工会话 {case_id} 不存在"
CASE_CLOSED: Final = "转人工会话 {case_id} 已结束"

# The largest id a 32-bit INTEGER primary key holds; larger ids are refused with 422, not a DB error.
_MAX_CASE_ID: Final = 2**31 - 1

CaseId = Annotated[int, Path(ge=1, le=_MAX_CASE_ID, description="The hand-off case id.")]

_CASE_ERRORS: dict[int | str, dict[str, object]] = {
    **AUTH_ERRORS,
    404: {"model": ErrorDetail, "description": "No such case."},
    409: {"model": ErrorDetail, "description": "The case is already closed."},
}

router = APIRouter(prefix="/handoffs", tags=["handoffs"])


def _lock_open_case(session: Session, case_id: int) -> HandoffCase:
    """The case, locked for this transaction (a reply cannot race a close), if it is still open."""
    begin_write(session, HandoffCase)
    case = session.get(HandoffCase, case_id, with_for_update=True)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=CASE_NOT_FOUND.format(case_id=case_id))
    if case.status != HANDOFF_STATUS_OPEN:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=CASE_CLOSED.format(case_id=case_id))
    return case


def _list_open(factory: sessionmaker[Session]) -> list[HandoffCaseView]:
    with factory() as session:
        return list_open_handoffs(session)


def _reply(factory: sessionmaker[Session], case_id: int, text: str) -> StaffReply:
    with factory() as session:
        case = _lock_open_case(session, case_id)
        reply = add_staff_reply(session, case_id=case.id, text=text, staff_id=None)
        session.commit()
    return reply


def _close(factory: sessionmaker[Session], case_id: int, staff_id: str) -> HandoffCaseView:
    with factory() as session:
        case = _lock_open_case(session, case_id)
        # The closing words go out as the last reply; delivering them adds the rating buttons.
        add_staff_reply(session, case_id=case.id, text=CLOSING_TEXT, staff_id=None)
        view = close_handoff(session, case_id=case.id, staff_id=staff_id)
        session.commit()
    return view


@router.get(
    "",
    summary="List the open hand-off cases, the longest waiting first",
    response_model=list[HandoffCaseOut],
    responses=AUTH_ERRORS,
)
async def list_cases(_staff: StaffDep, sessions: SessionFactoryDep) -> list[HandoffCaseOut]:
    """Every open case with its transcript (customer, bot and staff lines, oldest first).

    The transcript is shown unmasked: staff need the customer's own words, phone numbers included.
    """
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
    case_id: CaseId, body: StaffReplyIn, _staff: StaffDep, sessions: SessionFactoryDep
) -> StaffReplyOut:
    """Queue the reply; the customer's chat shows it on its next poll or message, exactly once."""
    queued = await anyio.to_thread.run_sync(partial(_reply, sessions, case_id, body.text))
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
    staff_id = staff.principal_id or STAFF_ID
    view = await anyio.to_thread.run_sync(partial(_close, sessions, case_id, staff_id))
    logger.info("staff closed hand-off case %s", case_id)
    return HandoffCaseOut.model_validate(view)
