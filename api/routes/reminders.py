"""`/api/reminders` and `/api/tasks/{id}/done`: what the signed-in employee should act on today.

Follow-ups due, birthdays within `days` (7 by default) and lapsed customers, by the rules of
`crm_store.reminders` and the one lapse rule of `crm_store.lapse`, within the employee's scope.
A task is marked done by its owner or an admin (403 otherwise, 409 when it is not open); audited.
"""

from functools import partial
from typing import Annotated, Final

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.schemas.common import ErrorDetail
from api.schemas.reminders import FollowUpOut, RemindersOut
from crm_store import clock
from crm_store.access import Actor
from crm_store.reminders import BIRTHDAY_DAYS, complete_task, reminders

# The largest id a 32-bit INTEGER primary key holds; larger ids are refused with 422, not a DB error.
_MAX_TASK_ID: Final = 2**31 - 1

TaskId = Annotated[int, Path(ge=1, le=_MAX_TASK_ID, description="The task id.")]

router = APIRouter(tags=["reminders"])


def _reminders(factory: sessionmaker[Session], actor: Actor, days: int) -> RemindersOut:
    with factory() as session:
        found = reminders(session, actor, today=clock.today(), days=days)
    return RemindersOut.model_validate(found.to_json())


def _done(factory: sessionmaker[Session], actor: Actor, task_id: int) -> FollowUpOut:
    with factory() as session:
        done = complete_task(session, actor, task_id)
        session.commit()
    return FollowUpOut(
        kind=done.kind,
        task_id=done.task_id,
        interaction_id=done.interaction_id,
        customer_id=done.customer_id,
        customer_name=done.customer_name,
        title=done.title,
        due_date=done.due_date,
        days_overdue=done.days_overdue,
    )


@router.get(
    "/reminders",
    summary="Follow-ups due, birthdays coming and lapsed customers",
    response_model=RemindersOut,
    responses={**AUTH_ERRORS, 403: {"model": ErrorDetail, "description": "Not a staff account."}},
)
async def list_reminders(
    staff: StaffDep,
    sessions: SessionFactoryDep,
    days: Annotated[int, Query(ge=0, le=31, description="Birthdays within this many days.")] = BIRTHDAY_DAYS,
) -> RemindersOut:
    """今天要跟进谁, 这周谁过生日, 哪些客户很久没下单了: in one answer."""
    return await anyio.to_thread.run_sync(partial(_reminders, sessions, staff, days))


@router.post(
    "/tasks/{task_id}/done",
    summary="Mark a task done",
    response_model=FollowUpOut,
    responses={
        **AUTH_ERRORS,
        403: {"model": ErrorDetail, "description": "Neither the task's owner nor an admin."},
        404: {"model": ErrorDetail, "description": "No such task."},
        409: {"model": ErrorDetail, "description": "The task is not open any more."},
    },
)
async def done(task_id: TaskId, staff: StaffDep, sessions: SessionFactoryDep) -> FollowUpOut:
    """The task is 已完成 from now on; the change is audited with your id."""
    return await anyio.to_thread.run_sync(partial(_done, sessions, staff, task_id))
