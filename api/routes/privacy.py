"""`/api/admin/customers/{id}/personal-data` and `…/erase`: a customer's personal data on request (PIPL).

- `GET …/personal-data`: everything held about the customer (`crm_store.personal_data.export_customer`),
  their conversations in Rasa's tracker store included; the body of `crmbot privacy export --json`.
- `POST …/erase`: their personal data removed everywhere, orders kept for the figures
  (`erase_customer`); answers what changed, in counts. Erasing again is harmless.

Admins only: 401 without a sign-in, 403 for every other role (the services refuse), 404 for an
unknown id. Both are audited with the admin's id and counts only. docs/privacy.md.
"""

from functools import partial
from typing import Annotated, Final

import anyio.to_thread
from fastapi import APIRouter, Path
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.schemas.common import ErrorDetail
from api.schemas.privacy import ErasureOut, PersonalDataOut
from crm_store.access import Actor
from crm_store.personal_data import erase_customer, export_customer, tracker_store

CustomerId = Annotated[str, Path(min_length=1, max_length=32, description="The customer id, e.g. C0001.")]

_ERRORS: Final[dict[int | str, dict[str, object]]] = {
    **AUTH_ERRORS,
    403: {"model": ErrorDetail, "description": "Not an admin."},
    404: {"model": ErrorDetail, "description": "No such customer."},
}

router = APIRouter(prefix="/admin/customers", tags=["privacy"])


def _export(factory: sessionmaker[Session], actor: Actor, customer_id: str) -> PersonalDataOut:
    tracker = tracker_store()
    try:
        with factory() as session:
            data = export_customer(session, actor, customer_id, tracker=tracker)
            session.commit()  # the audit row of the export
    finally:
        if tracker is not None:
            tracker.dispose()
    return PersonalDataOut.model_validate(data)


def _erase(factory: sessionmaker[Session], actor: Actor, customer_id: str) -> ErasureOut:
    tracker = tracker_store()
    try:
        with factory() as session:
            report = erase_customer(session, actor, customer_id, tracker=tracker)
            session.commit()
    finally:
        if tracker is not None:
            tracker.dispose()
    return ErasureOut.model_validate(report.to_json())


@router.get(
    "/{customer_id}/personal-data",
    summary="Everything held about a customer (admins)",
    response_model=PersonalDataOut,
    responses=_ERRORS,
)
async def personal_data(
    customer_id: CustomerId, staff: StaffDep, sessions: SessionFactoryDep
) -> PersonalDataOut:
    """Profile, orders, tickets, visits, messages, hand-off transcripts, WeChat links, FAQ votes,
    unanswered questions and conversations, as stored (phones and names in clear)."""
    return await anyio.to_thread.run_sync(partial(_export, sessions, staff, customer_id))


@router.post(
    "/{customer_id}/erase",
    summary="Erase a customer's personal data, keeping their orders for the figures (admins)",
    response_model=ErasureOut,
    responses=_ERRORS,
)
async def erase(customer_id: CustomerId, staff: StaffDep, sessions: SessionFactoryDep) -> ErasureOut:
    """Name, phone, e-mail, birthday, notes and every text they wrote or were sent are removed; their
    conversations are blanked; orders keep their amounts and dates. Cannot be undone."""
    return await anyio.to_thread.run_sync(partial(_erase, sessions, staff, customer_id))
