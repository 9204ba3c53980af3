"""Opportunities: the sales pipeline, its stage probabilities, moves with their history, "我的商机".

The pipeline is 线索 → 需求确认 → 报价 → 谈判 → 赢单 / 输单 (`PIPELINE`); 赢单 and 输单 close an
opportunity, and a closed one does not move or change any more (`Conflict("opportunity_closed")`).
An open one may move forward or back to any pipeline stage; moving to 输单 needs a reason
(`close_lost`). Every move, creation included, adds an `OpportunityStageChange` row (from, to, when,
who) and an audit row. Older data may hold the legacy stages 初步接触 and 方案演示
(`crm_store.vocab.OPPORTUNITY_LEGACY_STAGES`): they count as open, with the probabilities below,
and the next move takes the opportunity into the pipeline.

**Stage probabilities, the one place** (`STAGE_PROBABILITY`, percent): 线索 10, 需求确认 30,
报价 50, 谈判 70, 赢单 100, 输单 0; legacy 初步接触 10, 方案演示 40. The weighted amount of an
opportunity is amount × probability / 100; a move writes the stage's probability into
`opportunities.probability` too, so that plain SQL reads the same figure.

Who may do what:

| role      | sees (lists, find)                                            | may change                    |
|-----------|---------------------------------------------------------------|-------------------------------|
| `sales`   | the opportunities they own                                    | the ones they own             |
| `manager` | the ones owned by an employee of their region (全国: all)     | the same                      |
| `admin`   | all                                                           | all                           |
| `service` | none (`Forbidden("role_not_allowed")`)                        | none                          |

An opportunity outside what the actor sees is `NotFound("opportunity_not_found")`, like one that
does not exist. A salesperson creates opportunities for the customers in their scope and owns them;
a manager or an admin may name another owner (by default the customer's owner).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import ColumnElement, String, false, literal, or_, select, true
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.access import ALL_REGIONS, Actor, require_role, visible_customer
from crm_store.audit import audit
from crm_store.errors import Conflict, Invalid, NotFound
from crm_store.ids import add_with_new_id
from crm_store.models import Employee, Opportunity, OpportunityStageChange
from crm_store.vocab import (
    OPPORTUNITY_LEGACY_STAGES,
    OPPORTUNITY_PIPELINE,
    OPPORTUNITY_STAGE_LOST,
    OPPORTUNITY_STAGE_WON,
)

__all__ = [
    "CLOSED_STAGES",
    "OPEN_STAGES",
    "PIPELINE",
    "STAGE_PROBABILITY",
    "OpportunityView",
    "Pipeline",
    "close_lost",
    "create_opportunity",
    "find_opportunities",
    "move_stage",
    "open_pipeline",
    "opportunity_view",
    "set_amount",
    "weighted_amount",
]

PIPELINE: Final = OPPORTUNITY_PIPELINE
"""线索 → 需求确认 → 报价 → 谈判 → 赢单 / 输单."""

CLOSED_STAGES: Final = frozenset({OPPORTUNITY_STAGE_WON, OPPORTUNITY_STAGE_LOST})
OPEN_STAGES: Final = tuple(stage for stage in PIPELINE if stage not in CLOSED_STAGES) + tuple(
    OPPORTUNITY_LEGACY_STAGES
)
"""Stages of an opportunity still in play (the legacy ones included)."""

STAGE_PROBABILITY: Final[dict[str, int]] = {
    "线索": 10,
    "需求确认": 30,
    "报价": 50,
    "谈判": 70,
    "赢单": 100,
    "输单": 0,
    # Legacy stages of older data.
    "初步接触": 10,
    "方案演示": 40,
}
"""Chance of winning, in percent, by stage: the one documented place (module docstring)."""

EDITOR_ROLES: Final = ("sales", "manager", "admin")
NAME_MAX_CHARS: Final = 128
LOST_REASON_MAX_CHARS: Final = 500
AMOUNT_MAX: Final = Decimal("9999999999.99")
FIND_LIMIT: Final = 10
OPPORTUNITY_ID_PREFIX: Final = "OP"
OPPORTUNITY_ID_DIGITS: Final = 3


def weighted_amount(amount: Decimal, stage: str) -> Decimal:
    """amount × the stage's probability, to the cent."""
    return (amount * STAGE_PROBABILITY.get(stage, 0) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class StageChangeView:
    """One entry of the stage history."""

    from_stage: str | None
    to_stage: str
    changed_at: datetime
    actor_id: str | None


@dataclass(frozen=True)
class OpportunityView:
    """An opportunity as staff see it, with its weighted amount and (when asked for) its history."""

    opportunity_id: str
    name: str
    customer_id: str
    customer_name: str
    company: str | None
    owner_id: str
    owner_name: str
    stage: str
    amount: Decimal
    probability: int
    weighted_amount: Decimal
    expected_close: date | None
    lost_reason: str | None
    is_open: bool
    history: tuple[StageChangeView, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: amounts as numbers, dates ISO."""
        return {
            "opportunity_id": self.opportunity_id,
            "name": self.name,
            "customer_id": self.customer_id,
            "customer_name": self.customer_name,
            "company": self.company,
            "owner_id": self.owner_id,
            "owner_name": self.owner_name,
            "stage": self.stage,
            "amount": float(self.amount),
            "probability": self.probability,
            "weighted_amount": float(self.weighted_amount),
            "expected_close": self.expected_close.isoformat() if self.expected_close else None,
            "lost_reason": self.lost_reason,
            "is_open": self.is_open,
            "history": [
                {
                    "from_stage": change.from_stage,
                    "to_stage": change.to_stage,
                    "changed_at": change.changed_at.isoformat(),
                    "actor_id": change.actor_id,
                }
                for change in self.history
            ],
        }


@dataclass(frozen=True)
class Pipeline:
    """The open opportunities an actor sees, with the totals of amount and weighted amount."""

    items: tuple[OpportunityView, ...]
    total_amount: Decimal
    weighted_total: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [item.to_json() for item in self.items],
            "total_amount": float(self.total_amount),
            "weighted_total": float(self.weighted_total),
        }


def _view(opportunity: Opportunity, *, with_history: bool = False) -> OpportunityView:
    history: tuple[StageChangeView, ...] = ()
    if with_history:
        history = tuple(
            StageChangeView(c.from_stage, c.to_stage, c.changed_at, c.actor_id)
            for c in opportunity.stage_changes
        )
    return OpportunityView(
        opportunity_id=opportunity.opportunity_id,
        name=opportunity.name,
        customer_id=opportunity.customer_id,
        customer_name=opportunity.customer.name,
        company=opportunity.customer.company,
        owner_id=opportunity.owner_id,
        owner_name=opportunity.owner.name,
        stage=opportunity.stage,
        amount=opportunity.amount,
        probability=STAGE_PROBABILITY.get(opportunity.stage, 0),
        weighted_amount=weighted_amount(opportunity.amount, opportunity.stage),
        expected_close=opportunity.expected_close,
        lost_reason=opportunity.lost_reason,
        is_open=opportunity.stage not in CLOSED_STAGES,
        history=history,
    )


def opportunity_scope(actor: Actor) -> ColumnElement[bool]:
    """A WHERE condition on `Opportunity` (joined with its owner `Employee`) for what `actor` sees."""
    if not actor.is_staff:
        return false()
    if actor.role == "admin" or (actor.role == "manager" and actor.region == ALL_REGIONS):
        return true()
    if actor.role == "manager":
        return Employee.region == actor.region if actor.region else false()
    if actor.role == "sales":
        return Opportunity.owner_id == actor.employee_id
    return false()


def _scoped(actor: Actor) -> Any:
    return (
        select(Opportunity)
        .join(Employee, Employee.employee_id == Opportunity.owner_id)
        .where(opportunity_scope(actor))
    )


def _editable(session: Session, actor: Actor, opportunity_id: str) -> Opportunity:
    require_role(actor, *EDITOR_ROLES)
    opportunity: Opportunity | None = session.scalar(
        _scoped(actor).where(Opportunity.opportunity_id == opportunity_id).with_for_update(of=Opportunity)
    )
    if opportunity is None:
        raise NotFound("opportunity_not_found", opportunity_id=opportunity_id)
    return opportunity


def _open(opportunity: Opportunity) -> None:
    if opportunity.stage in CLOSED_STAGES:
        raise Conflict(
            "opportunity_closed", opportunity_id=opportunity.opportunity_id, stage=opportunity.stage
        )


def check_amount(raw: object) -> Decimal:
    """A positive amount in CNY, to the cent.

    Raises:
        Invalid: Not a number, not above zero or too large ("opportunity_amount_invalid", field amount).
    """
    try:
        amount = Decimal(str(raw).strip().replace(",", "").removesuffix("元")) if raw is not None else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount <= 0 or amount > AMOUNT_MAX:
        raise Invalid("opportunity_amount_invalid", field="amount")
    return amount.quantize(Decimal("0.01"))


def _record_move(actor: Actor, opportunity: Opportunity, to_stage: str) -> None:
    change = OpportunityStageChange(
        from_stage=opportunity.stage,
        to_stage=to_stage,
        changed_at=clock.now(),
        actor_id=actor.audit_id,
    )
    opportunity.stage_changes.append(change)
    opportunity.stage = to_stage
    opportunity.probability = STAGE_PROBABILITY[to_stage]


def create_opportunity(
    session: Session,
    actor: Actor,
    *,
    customer_id: str,
    name: str,
    amount: object,
    stage: str = PIPELINE[0],
    expected_close: date | None = None,
    owner_id: str | None = None,
) -> OpportunityView:
    """Open an opportunity for a customer in the actor's scope, with its first history row.

    Args:
        stage: An open pipeline stage (线索 by default).
        owner_id: For managers and admins only: who owns it (the customer's owner by default, else
            the actor). A salesperson always owns what they create.

    Raises:
        Forbidden: Not staff ("staff_only") or a service agent ("role_not_allowed").
        NotFound: The customer is not in the actor's scope ("customer_not_found"), or the named
            owner does not exist ("employee_not_found").
        Invalid: Empty or long name ("opportunity_name_invalid"), amount ("opportunity_amount_invalid"),
            a stage not open in the pipeline ("opportunity_stage_invalid"), with `field`.
    """
    require_role(actor, *EDITOR_ROLES)
    customer = visible_customer(session, actor, customer_id)
    title = " ".join(name.split())
    if not title or len(title) > NAME_MAX_CHARS:
        raise Invalid("opportunity_name_invalid", field="name", max_chars=NAME_MAX_CHARS)
    value = check_amount(amount)
    if stage not in PIPELINE or stage in CLOSED_STAGES:
        raise Invalid("opportunity_stage_invalid", field="stage")
    # A salesperson owns what they create; others may name an owner.
    chosen = owner_id or customer.owner_id or actor.employee_id
    owner = actor.employee_id if actor.role == "sales" else chosen
    if owner is None or session.get(Employee, owner) is None:
        raise NotFound("employee_not_found", employee_id=owner)

    def build(new_id: str) -> Opportunity:
        return Opportunity(
            opportunity_id=new_id,
            customer_id=customer.customer_id,
            owner_id=owner,
            name=title,
            stage=stage,
            amount=value,
            expected_close=expected_close,
            probability=STAGE_PROBABILITY[stage],
        )

    opportunity = add_with_new_id(
        session,
        model=Opportunity,
        column=Opportunity.opportunity_id,
        prefix=OPPORTUNITY_ID_PREFIX,
        width=OPPORTUNITY_ID_DIGITS,
        build=build,
    )
    opportunity.stage_changes.append(
        OpportunityStageChange(
            from_stage=None, to_stage=stage, changed_at=clock.now(), actor_id=actor.audit_id
        )
    )
    audit(
        session,
        actor,
        "create_opportunity",
        entity="opportunity",
        entity_id=opportunity.opportunity_id,
        changes=[("stage", None, stage), ("amount", None, value), ("owner_id", None, owner)],
        customer_id=customer.customer_id,
    )
    session.flush()
    session.refresh(opportunity)
    return _view(opportunity, with_history=True)


def move_stage(session: Session, actor: Actor, opportunity_id: str, stage: str) -> OpportunityView:
    """Move an open opportunity to another pipeline stage, forward or back; 赢单 closes it as won.

    Moving to the stage it is already at changes nothing and writes nothing.

    Raises:
        Forbidden, NotFound: As `create_opportunity` ("opportunity_not_found" out of scope).
        Invalid: Not a pipeline stage ("opportunity_stage_invalid"); 输单 without a reason
            ("lost_reason_required": use `close_lost`).
        Conflict: The opportunity is closed ("opportunity_closed").
    """
    opportunity = _editable(session, actor, opportunity_id)
    if stage not in PIPELINE:
        raise Invalid("opportunity_stage_invalid", field="stage")
    _open(opportunity)
    if stage == OPPORTUNITY_STAGE_LOST:
        raise Invalid("lost_reason_required", field="lost_reason")
    if stage != opportunity.stage:
        old = opportunity.stage
        _record_move(actor, opportunity, stage)
        audit(
            session,
            actor,
            "move_opportunity",
            entity="opportunity",
            entity_id=opportunity_id,
            changes=[("stage", old, stage)],
        )
        session.flush()
    return _view(opportunity, with_history=True)


def set_amount(session: Session, actor: Actor, opportunity_id: str, amount: object) -> OpportunityView:
    """Change the amount of an open opportunity.

    Raises:
        Forbidden, NotFound: As `move_stage`.
        Invalid: "opportunity_amount_invalid" (field amount).
        Conflict: The opportunity is closed ("opportunity_closed").
    """
    opportunity = _editable(session, actor, opportunity_id)
    value = check_amount(amount)
    _open(opportunity)
    if value != opportunity.amount:
        old = opportunity.amount
        opportunity.amount = value
        audit(
            session,
            actor,
            "update_opportunity",
            entity="opportunity",
            entity_id=opportunity_id,
            changes=[("amount", old, value)],
        )
        session.flush()
    return _view(opportunity, with_history=True)


def close_lost(session: Session, actor: Actor, opportunity_id: str, reason: str) -> OpportunityView:
    """Close an open opportunity as lost (输单), with the reason the salesperson gives.

    Raises:
        Forbidden, NotFound: As `move_stage`.
        Invalid: No reason, or a long one ("lost_reason_required", "lost_reason_too_long"; field lost_reason).
        Conflict: The opportunity is closed already ("opportunity_closed").
    """
    opportunity = _editable(session, actor, opportunity_id)
    text = " ".join((reason or "").split())
    if not text:
        raise Invalid("lost_reason_required", field="lost_reason")
    if len(text) > LOST_REASON_MAX_CHARS:
        raise Invalid("lost_reason_too_long", field="lost_reason", max_chars=LOST_REASON_MAX_CHARS)
    _open(opportunity)
    old = opportunity.stage
    _record_move(actor, opportunity, OPPORTUNITY_STAGE_LOST)
    opportunity.lost_reason = text
    # The reason is free text: named in the audit, not copied (it may name people).
    audit(
        session,
        actor,
        "close_opportunity_lost",
        entity="opportunity",
        entity_id=opportunity_id,
        changes=[("stage", old, OPPORTUNITY_STAGE_LOST)],
        fields=["lost_reason"],
    )
    session.flush()
    return _view(opportunity, with_history=True)


def opportunity_view(session: Session, actor: Actor, opportunity_id: str) -> OpportunityView:
    """One opportunity the actor sees, with its stage history.

    Raises:
        Forbidden: Not staff, or a service agent.
        NotFound: "opportunity_not_found" (also outside the actor's scope).
    """
    require_role(actor, *EDITOR_ROLES)
    opportunity: Opportunity | None = session.scalar(
        _scoped(actor).where(Opportunity.opportunity_id == opportunity_id)
    )
    if opportunity is None:
        raise NotFound("opportunity_not_found", opportunity_id=opportunity_id)
    return _view(opportunity, with_history=True)


def _pipeline(views: Sequence[OpportunityView]) -> Pipeline:
    return Pipeline(
        items=tuple(views),
        total_amount=sum((v.amount for v in views), Decimal(0)),
        weighted_total=sum((v.weighted_amount for v in views), Decimal(0)),
    )


def open_pipeline(session: Session, actor: Actor) -> Pipeline:
    """ "我的商机": the open opportunities the actor sees, the largest weighted amount first, with totals.

    Raises:
        Forbidden: Not staff ("staff_only"), or a service agent ("role_not_allowed").
    """
    require_role(actor, *EDITOR_ROLES)
    rows = session.scalars(_scoped(actor).where(Opportunity.stage.in_(OPEN_STAGES))).all()
    views = sorted(
        (_view(row) for row in rows),
        key=lambda v: (-v.weighted_amount, v.expected_close or date.max, v.opportunity_id),
    )
    return _pipeline(views)


def find_opportunities(
    session: Session, actor: Actor, text: str, *, include_closed: bool = False
) -> list[OpportunityView]:
    """The opportunities the actor sees that `text` names: by id (OP001), name, customer or company.

    An id match comes alone. Otherwise the opportunities whose name contains the text or is
    contained in it ("二期" / "企业版软件二期那个商机"); failing that, those of the customers
    `crm_store.customer360.find_customers` finds for the text (name, 王总, 华峰科技 …). Open ones
    first, at most `FIND_LIMIT`; closed ones only with `include_closed`.

    Raises:
        Forbidden: Not staff, or a service agent.
    """
    # customer360 shows opportunities (it imports this module), so its finder is imported here.
    from crm_store.customer360 import find_customers

    require_role(actor, *EDITOR_ROLES)
    query = "".join(text.split())
    if not query:
        return []
    base = _scoped(actor)
    if not include_closed:
        base = base.where(Opportunity.stage.in_(OPEN_STAGES))
    by_id = session.scalar(base.where(Opportunity.opportunity_id == query.upper()))
    if by_id is not None:
        return [_view(by_id)]
    rows = list(
        session.scalars(
            base.where(
                or_(
                    Opportunity.name.like(f"%{_escape_like(query)}%", escape="\\"),
                    literal(query, String).contains(Opportunity.name),
                )
            ).limit(FIND_LIMIT * 5)
        )
    )
    if not rows:
        customers = [match.customer_id for match in find_customers(session, actor, query)]
        if customers:
            rows = list(
                session.scalars(base.where(Opportunity.customer_id.in_(customers)).limit(FIND_LIMIT * 5))
            )
    views = sorted((_view(row) for row in rows), key=lambda v: (not v.is_open, v.opportunity_id))
    return views[:FIND_LIMIT]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
