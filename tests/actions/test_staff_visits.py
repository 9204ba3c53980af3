"""Logging a visit by chat, run as the action server runs them, on the demo store (2026-11-23, a Monday).

王芳 (C0003, 华峰科技) and 汤洋 (C0028, also 华峰科技) are E03's customers; 张伟 (C0001) is E02's.
"""

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from staff_trackers import responses, run, said, staff_tracker

from actions.staff_visits import ActionAskVisitDecision, ActionFinishVisit, ValidateVisitForm
from crm_store.models import AuditLog, Interaction, Task

SENTENCE = "刚和华峰科技的王芳通了电话，她对二期报价挺感兴趣，下周二再联系她"


def _turn(
    text: str,
    draft: str | None,
    domain: dict[str, Any],
    *,
    employee: str | None = "E03",
    intent: str = "inform",
    **entities: str,
) -> tuple[Any, dict[str, Any]]:
    tracker = staff_tracker(
        text,
        employee=employee,
        intent=intent,
        entities=entities,
        slots={"visit_draft": draft},
        requested_slot="visit_decision" if draft else None,
        active_loop="visit_form",
    )
    return run(ValidateVisitForm(), tracker, domain)


def _ask(draft: str, domain: dict[str, Any]) -> Any:
    return run(
        ActionAskVisitDecision(), staff_tracker("", employee="E03", slots={"visit_draft": draft}), domain
    )[0]


def _finish(draft: str, decision: str, domain: dict[str, Any], employee: str = "E03") -> Any:
    tracker = staff_tracker(
        "确认", employee=employee, intent="affirm", slots={"visit_draft": draft, "visit_decision": decision}
    )
    return run(ActionFinishVisit(), tracker, domain)[0]


def _new_rows(factory: sessionmaker[Session]) -> tuple[list[Interaction], list[Task]]:
    with factory() as session:
        interactions = list(
            session.scalars(
                select(Interaction).where(
                    Interaction.customer_id == "C0003",
                    Interaction.employee_id == "E03",
                    Interaction.occurred_at == date(2026, 11, 23),
                )
            )
        )
        tasks = list(session.scalars(select(Task).where(Task.customer_id == "C0003")))
        session.expunge_all()
    return interactions, tasks


def test_one_sentence_is_confirmed_then_saved_as_one_interaction_and_one_task(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn(SENTENCE, None, domain, intent="log_visit")
    draft = slots["visit_draft"]
    extraction = json.loads(draft)["extraction"]
    assert (extraction["customer_id"], extraction["kind"], extraction["next_date"]) == (
        "C0003",
        "电话",
        "2026-12-01",
    )
    assert slots["visit_decision"] is None

    asked = _ask(draft, domain)
    assert responses(asked) == ["utter_visit_draft"]
    assert asked.messages[0]["customer"] == "王芳" and "12月1日" in asked.messages[0]["next_date"]
    assert [m["custom"]["card"] for m in asked.messages if m.get("custom")] == ["visit_draft"]
    assert _new_rows(action_store) == ([], [])  # nothing saved before 确认

    _, decided = _turn("确认", draft, domain, intent="affirm")
    assert decided == {"visit_decision": "confirmed"}
    dispatcher = _finish(draft, "confirmed", domain)

    assert responses(dispatcher) == ["utter_visit_saved_with_task"]
    assert "2026年12月1日" in dispatcher.messages[0]["next_date"]
    interactions, tasks = _new_rows(action_store)
    assert len(interactions) == 1 and interactions[0].kind == "电话"
    assert [(t.due_date, t.owner_id, t.status) for t in tasks] == [(date(2026, 12, 1), "E03", "待办")]
    with action_store() as session:
        audited = session.scalars(
            select(AuditLog).where(AuditLog.entity_id == interactions[0].interaction_id)
        ).all()
        assert audited and all(row.actor_id == "E03" for row in audited)


def test_a_correction_moves_the_next_date_and_the_card_is_shown_again(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn(
        "今天下午拜访了华峰科技的王芳，聊了二期报价，她比较感兴趣，下周三把报价单发过去",
        None,
        domain,
        intent="log_visit",
    )
    assert json.loads(slots["visit_draft"])["extraction"]["next_date"] == "2026-12-02"

    _, slots = _turn("不是周三，是周四", slots["visit_draft"], domain, intent="deny")

    assert slots["visit_decision"] is None  # a "no" that corrects is not a cancel
    assert json.loads(slots["visit_draft"])["extraction"]["next_date"] == "2026-12-03"
    assert responses(_ask(slots["visit_draft"], domain)) == ["utter_visit_draft"]


def test_two_matching_customers_are_asked_with_buttons(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn("今天去华峰科技拜访了，聊了续约", None, domain, intent="log_visit")
    asked = _ask(slots["visit_draft"], domain)
    assert responses(asked) == ["utter_ask_visit_pick_customer"]
    payloads = [b["payload"] for b in asked.messages[0]["buttons"]]
    assert '/inform{"customer_id": "C0003"}' in payloads and '/inform{"customer_id": "C0028"}' in payloads

    _, slots = _turn('/inform{"customer_id": "C0003"}', slots["visit_draft"], domain, customer_id="C0003")

    assert json.loads(slots["visit_draft"])["extraction"]["customer_id"] == "C0003"
    assert responses(_ask(slots["visit_draft"], domain)) == ["utter_visit_draft"]


def test_cancel_saves_nothing(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    _, slots = _turn(SENTENCE, None, domain, intent="log_visit")
    _, decided = _turn("取消", slots["visit_draft"], domain, intent="deny")
    assert decided == {"visit_decision": "cancelled"}

    dispatcher = _finish(slots["visit_draft"], "cancelled", domain)

    assert responses(dispatcher) == ["utter_visit_cancelled"]
    assert _new_rows(action_store) == ([], [])


def test_a_reminder_button_starts_a_visit_with_its_customer(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn(
        '/log_visit{"customer_id":"C0003"}', None, domain, intent="log_visit", customer_id="C0003"
    )
    draft = slots["visit_draft"]
    assert json.loads(draft)["extraction"]["customer_id"] == "C0003"
    assert responses(_ask(draft, domain)) == ["utter_ask_visit_summary"]

    _, slots = _turn("电话沟通了二期报价，周五再联系", draft, domain)

    extraction = json.loads(slots["visit_draft"])["extraction"]
    assert extraction["summary"] and extraction["next_date"] == "2026-11-27"


@pytest.mark.parametrize("employee", ["E02", "E04", "E07"])
def test_a_customer_outside_the_scope_is_never_matched(
    employee: str, action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _turn(SENTENCE, None, domain, employee=employee, intent="log_visit")

    assert json.loads(slots["visit_draft"])["extraction"]["customer_id"] is None
    assert "C0003" not in said_and_slots(slots)
    # A draft forged into the slot is refused by the store.
    forged = json.dumps(
        {
            "extraction": {
                "customer_id": "C0003",
                "candidates": [],
                "kind": "电话",
                "occurred_at": "2026-11-23",
                "summary": "x",
                "next_step": None,
                "next_date": None,
            },
            "customer": "王芳",
        }
    )
    refused = _finish(forged, "confirmed", domain, employee=employee)
    assert responses(refused)[0] in ("utter_customer_not_found", "utter_staff_only")
    assert _new_rows(action_store)[0] == []


def said_and_slots(slots: dict[str, Any]) -> str:
    return json.dumps(json.loads(slots["visit_draft"])["extraction"]["candidates"], ensure_ascii=False)


def test_a_customer_cannot_log_a_visit(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    dispatcher, slots = _turn(SENTENCE, None, domain, employee=None, intent="log_visit")

    assert responses(dispatcher) == ["utter_staff_only"]
    assert slots == {"visit_decision": "refused"}
    assert "王芳" not in said(dispatcher)
