"""`/api/opportunities`: "我的商机", creating one, moving its stage, its amount, closing it as lost.

Rules, scope and stage probabilities are those of `crm_store.opportunities`: an opportunity the
signed-in employee does not see is 404, a closed one 409, a bad amount or stage 422 naming the
field. Every change writes a stage-history row (for moves) and an audit row with the employee's id.
"""

from decimal import Decimal
from functools import partial
from typing import Annotated, Final

import anyio.to_thread
from fastapi import APIRouter, Path, Query, status
from sqlalchemy.orm import Session, sessionmaker

from api.auth import AUTH_ERRORS, StaffDep
from api.deps import SessionFactoryDep
from api.schemas.common import ErrorDetail
from api.schemas.opportunities import OpportunityIn, OpportunityOut, OpportunityPatchIn, PipelineOut
from crm_store.access import Actor
from crm_store.opportunities import (
    OpportunityView,
    Pipeline,
    close_lost,
    create_opportunity,
    find_opportunities,
    move_stage,
    open_pipeline,
    opportunity_view,
    set_amount,
)
from crm_store.vocab import OPPORTUNITY_STAGE_LOST

OpportunityId = Annotated[str, Path(min_length=1, max_length=32, description="e.g. OP001.")]

_ERRORS: Final[dict[int | str, dict[str, object]]] = {
    **AUTH_ERRORS,
    403: {"model": ErrorDetail, "description": "Not a staff account, or a role without opportunities."},
    404: {"model": ErrorDetail, "description": "No such opportunity (or customer) in your scope."},
}

router = APIRouter(prefix="/opportunities", tags=["opportunities"])


def _list(factory: sessionmaker[Session], actor: Actor, q: str | None) -> PipelineOut:
    with factory() as session:
        if q:
            views = find_opportunities(session, actor, q)
            pipeline = Pipeline(
                items=tuple(views),
                total_amount=sum((v.amount for v in views), Decimal(0)),
                weighted_total=sum((v.weighted_amount for v in views), Decimal(0)),
            )
        else:
            pipeline = open_pipeline(session, actor)
    return PipelineOut.model_validate(pipeline.to_json())


def _create(factory: sessionmaker[Session], actor: Actor, body: OpportunityIn) -> OpportunityOut:
    with factory() as session:
        view = create_opportunity(
            session,
            actor,
            customer_id=body.customer_id,
            name=body.name,
            amount=body.amount,
            stage=body.stage,
            expected_close=body.expected_close,
            owner_id=body.owner_id,
        )
        session.commit()
    return OpportunityOut.model_validate(view.to_json())


def _patch(
    factory: sessionmaker[Session], actor: Actor, opportunity_id: str, body: OpportunityPatchIn
) -> OpportunityOut:
    with factory() as session:
        view: OpportunityView = opportunity_view(session, actor, opportunity_id)
        # One transaction: the amount first (a closed one refuses it), then the stage.
        if body.amount is not None:
            view = set_amount(session, actor, opportunity_id, body.amount)
        if body.lost_reason is not None or body.stage == OPPORTUNITY_STAGE_LOST:
            view = close_lost(session, actor, opportunity_id, body.lost_reason or "")
        elif body.stage is not None:
            view = move_stage(session, actor, opportunity_id, body.stage)
        session.commit()
    return OpportunityOut.model_validate(view.to_json())


@router.get(
    "",
    summary="我的商机: open opportunities with weighted amounts",
    response_model=PipelineOut,
    responses=_ERRORS,
)
async def list_opportunities(
    staff: StaffDep,
    sessions: SessionFactoryDep,
    q: Annotated[
        str | None, Query(max_length=64, description="An id, a name, a customer or company.")
    ] = None,
) -> PipelineOut:
    """Without `q`: every open opportunity you see, the largest weighted amount first, with totals.

    With `q`: the open ones it names (OP001, 二期, 华峰科技, 王芳); totals over those.
    """
    return await anyio.to_thread.run_sync(partial(_list, sessions, staff, q))


@router.post(
    "",
    summary="Create an opportunity",
    status_code=status.HTTP_201_CREATED,
    response_model=OpportunityOut,
    responses={**_ERRORS, 422: {"description": "A value breaks its rule; `loc` names the field."}},
)
async def create(body: OpportunityIn, staff: StaffDep, sessions: SessionFactoryDep) -> OpportunityOut:
    """Open an opportunity for a customer in your scope; its first stage-history row is written."""
    return await anyio.to_thread.run_sync(partial(_create, sessions, staff, body))


@router.patch(
    "/{opportunity_id}",
    summary="Move the stage, change the amount, or close as lost",
    response_model=OpportunityOut,
    responses={
        **_ERRORS,
        409: {"model": ErrorDetail, "description": "The opportunity is closed (赢单 or 输单)."},
        422: {"description": "A value breaks its rule; `loc` names the field."},
    },
)
async def patch(
    opportunity_id: OpportunityId, body: OpportunityPatchIn, staff: StaffDep, sessions: SessionFactoryDep
) -> OpportunityOut:
    """`stage` moves it (forward or back; 赢单 closes it as won); `lost_reason` closes it as 输单."""
    return await anyio.to_thread.run_sync(partial(_patch, sessions, staff, opportunity_id, body))
