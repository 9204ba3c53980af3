"""Opportunities by chat, run as the action server runs them, on the demo store.

Demo: OP001 企业版软件二期 (王芳, E03, 报价, 98000), OP002 办公家具批量采购 (孔思远, E02, 需求确认,
45000), OP003 空气净化器团购 (韦海燕, E04, 谈判, 38000).
"""

import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from staff_trackers import responses, run, said, staff_tracker

from actions.staff_opportunities import (
    ActionAskOpportunityChangeDecision,
    ActionFinishOpportunityChange,
    ValidateOpportunityChangeForm,
)
from crm_store.models import Opportunity, OpportunityStageChange
from crm_store.staff_phrases import parse_amount, read_opportunity_change


@pytest.mark.parametrize(
    ("text", "amount"),
    [("金额改成12万", "120000"), ("商机金额调整为98000元", "98000"), ("报价2.6万", "26000"), ("OP002", None)],
)
def test_amounts_are_read_in_yuan(text: str, amount: str | None) -> None:
    assert parse_amount(text) == (Decimal(amount) if amount else None)


@pytest.mark.parametrize(
    ("text", "op", "detail"),
    [
        ("我的商机", "list", {}),
        ("OP001推进到谈判", "stage", {"to_stage": "谈判"}),
        ("OP003输单了，客户选了别家", "lost", {"reason": "客户选了别家"}),
        ("二期项目输了，原因是价格太高", "lost", {"reason": "价格太高"}),
        ("企业版软件二期金额改成12万", "amount", {"amount": "120000"}),
        ("新建一个商机，客户张伟，扫地机器人批量采购，金额3万", "create", {"amount": "30000"}),
    ],
)
def test_what_the_staff_asks_for_is_read(text: str, op: str, detail: dict[str, str]) -> None:
    change = read_opportunity_change(text)

    assert change["op"] == op
    assert {key: change[key] for key in detail} == detail


def _turn(
    text: str,
    draft: dict[str, Any] | None,
    domain: dict[str, Any],
    *,
    employee: str | None = "E03",
    intent: str = "inform",
    **entities: str,
) -> tuple[Any, dict[str, Any]]:
    slots = {"opportunity_change": json.dumps(draft, ensure_ascii=False) if draft else None}
    tracker = staff_tracker(
        text,
        employee=employee,
        intent=intent,
        entities=entities,
        slots=slots,
        requested_slot="opportunity_change_decision" if draft else None,
        active_loop="opportunity_change_form",
    )
    return run(ValidateOpportunityChangeForm(), tracker, domain)


def _ask(draft: dict[str, Any], domain: dict[str, Any]) -> Any:
    tracker = staff_tracker(
        "", employee="E03", slots={"opportunity_change": json.dumps(draft, ensure_ascii=False)}
    )
    return run(ActionAskOpportunityChangeDecision(), tracker, domain)[0]


def _finish(draft: dict[str, Any], domain: dict[str, Any], employee: str = "E03") -> Any:
    slots = {
        "opportunity_change": json.dumps(draft, ensure_ascii=False),
        "opportunity_change_decision": "confirmed",
    }
    return run(
        ActionFinishOpportunityChange(),
        staff_tracker("确认", employee=employee, intent="affirm", slots=slots),
        domain,
    )[0]


def test_my_opportunities_lists_only_mine_with_weighted_amounts(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, slots = _turn("我的商机", None, domain, intent="update_opportunity")

    assert slots == {"opportunity_change_decision": "refused"}  # answered at once, nothing to confirm
    assert responses(dispatcher) == ["utter_opportunity_pipeline"]
    message = dispatcher.messages[0]
    assert message["count"] == 1 and "OP001" in message["lines"]
    assert message["weighted"] == "49,000"  # 98000 × 50 % (报价)
    assert "OP002" not in said(dispatcher) and "OP003" not in said(dispatcher)


def test_a_stage_move_is_confirmed_then_saved_with_its_history(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn("OP001推进到谈判", None, domain, intent="update_opportunity")
    draft = json.loads(slots["opportunity_change"])
    asked = _ask(draft, domain)
    assert responses(asked) == ["utter_opportunity_confirm_stage"]
    assert (asked.messages[0]["from_stage"], asked.messages[0]["to_stage"]) == ("报价", "谈判")

    _, decided = _turn("确认", draft, domain, intent="affirm")
    assert decided == {"opportunity_change_decision": "confirmed"}
    dispatcher = _finish(draft, domain)

    assert responses(dispatcher) == ["utter_opportunity_saved"]
    with action_store() as session:
        assert session.get(Opportunity, "OP001").stage == "谈判"
        moves = session.scalars(
            select(OpportunityStageChange).where(OpportunityStageChange.opportunity_id == "OP001")
        ).all()
        assert [(m.from_stage, m.to_stage, m.actor_id) for m in moves][-1] == ("报价", "谈判", "E03")


def test_lost_asks_for_the_reason_then_closes(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn("OP001输单了", None, domain, intent="update_opportunity")
    draft = json.loads(slots["opportunity_change"])
    assert responses(_ask(draft, domain)) == ["utter_ask_opportunity_lost_reason"]

    _, slots = _turn("客户预算砍了，明年再说", draft, domain)
    draft = json.loads(slots["opportunity_change"])
    assert draft["reason"] == "客户预算砍了，明年再说"
    assert responses(_ask(draft, domain)) == ["utter_opportunity_confirm_lost"]
    _finish(draft, domain)

    with action_store() as session:
        closed = session.get(Opportunity, "OP001")
        assert (closed.stage, closed.lost_reason) == ("输单", "客户预算砍了，明年再说")


def test_an_amount_corrected_before_confirming(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn("OP001金额改成12万", None, domain, intent="update_opportunity")
    _, slots = _turn("不对，是13万", json.loads(slots["opportunity_change"]), domain, intent="deny")
    draft = json.loads(slots["opportunity_change"])
    assert responses(_ask(draft, domain)) == ["utter_opportunity_confirm_amount"]
    _finish(draft, domain)

    with action_store() as session:
        assert session.get(Opportunity, "OP001").amount == Decimal("130000")


def test_create_an_opportunity_for_my_customer(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    text = "新建一个商机，客户王芳，服务器扩容，金额20万"
    _, slots = _turn(text, None, domain, intent="update_opportunity", customer_name="王芳")
    draft = json.loads(slots["opportunity_change"])
    assert (draft["customer_id"], draft["name"], draft["amount"]) == ("C0003", "服务器扩容", "200000")
    dispatcher = _finish(draft, domain)

    assert responses(dispatcher) == ["utter_opportunity_created"]
    with action_store() as session:
        created = session.scalars(select(Opportunity).where(Opportunity.name == "服务器扩容")).one()
        assert (created.customer_id, created.owner_id, created.stage) == ("C0003", "E03", "线索")


@pytest.mark.parametrize("employee", ["E02", "E04", "E07"])
def test_others_cannot_touch_someone_elses_opportunity(
    employee: str, action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, slots = _turn("OP001推进到谈判", None, domain, employee=employee, intent="update_opportunity")
    if "opportunity_change" in slots:
        assert json.loads(slots["opportunity_change"]).get("opportunity_id") is None
    assert "企业版软件二期" not in said(dispatcher)
    # A draft forged into the slot is refused by the store.
    forged = {"op": "stage", "opportunity_id": "OP001", "name": "x", "from_stage": "报价", "to_stage": "谈判"}
    refused = _finish(forged, domain, employee=employee)
    assert responses(refused)[0] in ("utter_opportunity_not_found", "utter_staff_only")
    with action_store() as session:
        assert session.get(Opportunity, "OP001").stage == "报价"


def test_a_customer_gets_nothing(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    dispatcher, slots = _turn("我的商机", None, domain, employee=None, intent="update_opportunity")

    assert responses(dispatcher) == ["utter_staff_only"]
    assert slots == {"opportunity_change_decision": "refused"}
