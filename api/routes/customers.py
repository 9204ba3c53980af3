"""`/api/customers`: staff find a customer, read the 360 view, and update the record.

The services decide and refuse (`crm_store.customer360`, `crm_store.customer_updates`): a
customer outside the signed-in employee's scope is 404 exactly like a missing id, a value that
breaks its rule is 422 naming the field. Every view and every change is audited with the
employee's id. Every endpoint needs a staff sign-in (`Authorization: Bearer`, `api.auth`).
"""

from functools import partial
from typing import Annotated, Final

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.schemas.common import ErrorDetail
from api.schemas.customers import CustomerMatchOut, CustomerPatchIn, CustomerPatchOut, CustomerViewOut
from crm_store import clock
from crm_store.access import Actor
from crm_store.customer360 import customer_view, find_customers
from crm_store.customer_updates import update_customer

CustomerId = Annotated[str, Path(min_length=1, max_length=32, description="The customer id, e.g. C0001.")]

_ERRORS: Final[dict[int | str, dict[str, object]]] = {
    **AUTH_ERRORS,
    403: {"model": ErrorDetail, "description": "Not a staff account."},
    404: {"model": ErrorDetail, "description": "No such customer in your scope."},
}

router = APIRouter(prefix="/customers", tags=["customers"])


def _find(factory: sessionmaker[Session], actor: Actor, query: str) -> list[CustomerMatchOut]:
    with factory() as session:
        return [CustomerMatchOut.model_validate(m.to_json()) for m in find_customers(session, actor, query)]


def _view(factory: sessionmaker[Session], actor: Actor, customer_id: str) -> CustomerViewOut:
    with factory() as session:
        view = customer_view(session, actor, customer_id, today=clock.today())
        session.commit()  # the audit row of the view
    return CustomerViewOut.model_validate(view.to_json())


def _update(
    factory: sessionmaker[Session], actor: Actor, customer_id: str, changes: dict[str, object]
) -> CustomerPatchOut:
    with factory() as session:
        done = update_customer(session, actor, customer_id, changes, today=clock.today())
        session.commit()
    return CustomerPatchOut(customer_id=customer_id, changed=[field for field, _, _ in done])


@router.get(
    "",
    summary="Find customers by id, phone, name, 王总-style title or company",
    response_model=list[CustomerMatchOut],
    responses=_ERRORS,
)
async def search(
    staff: StaffDep,
    sessions: SessionFactoryDep,
    q: Annotated[str, Query(min_length=1, max_length=64, description="王芳, 王总, 华峰科技, C0003, 4104 …")],
) -> list[CustomerMatchOut]:
    """At most five customers of your scope, best match first (phones masked)."""
    return await anyio.to_thread.run_sync(partial(_find, sessions, staff, q))


@router.get(
    "/{customer_id}",
    summary="The 360 view of a customer",
    response_model=CustomerViewOut,
    responses=_ERRORS,
)
async def view(customer_id: CustomerId, staff: StaffDep, sessions: SessionFactoryDep) -> CustomerViewOut:
    """Profile, value tier, RFM, CLV, churn risk, lifecycle, orders, tickets, last contact,
    opportunities, preferences, birthday.

    Phone and e-mail are in full only for the customer's owner. The read is audited.
    """
    return await anyio.to_thread.run_sync(partial(_view, sessions, staff, customer_id))


@router.patch(
    "/{customer_id}",
    summary="Update a customer's phone, e-mail, city, birthday, notes or preferences",
    response_model=CustomerPatchOut,
    responses={**_ERRORS, 422: {"description": "A value breaks its rule; `loc` names the field."}},
)
async def patch(
    customer_id: CustomerId, body: CustomerPatchIn, staff: StaffDep, sessions: SessionFactoryDep
) -> CustomerPatchOut:
    """All given fields are checked first, then saved together and audited; nothing is saved on a 422."""
    return await anyio.to_thread.run_sync(partial(_update, sessions, staff, customer_id, body.changes()))
