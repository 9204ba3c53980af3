"""Customer 360 and customer updates by chat, run as the action server runs them, on the demo store.

Demo scope: 张伟 (C0001) is owned by E02 (sales 华东); 王芳 (C0003, 华峰科技) by E03 (sales 华北);
E01 is the 华东 manager, E06 a service agent handling a ticket of 张伟, E07 one with no ticket of
either, E08 the admin.
"""

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from staff_trackers import responses, run, said, staff_tracker

from actions.staff_customers import (
    ActionAskCustomerChangeDecision,
    ActionFinishCustomerChange,
    ActionQueryCustomer,
    ValidateCustomerChangeForm,
)
from crm_store.models import AuditLog, Customer
from crm_store.staff_phrases import read_customer_change

ZHANG_PHONE = "18201164104"
ZHANG_NOTE = "喜欢靠窗的位置"


def _query(text: str, employee: str | None, domain: dict[str, Any], **entities: str) -> Any:
    return run(
        ActionQueryCustomer(),
        staff_tracker(text, employee=employee, intent="query_customer", entities=entities),
        domain,
    )


def _card(dispatcher: Any) -> dict[str, Any] | None:
    cards = [m["custom"] for m in dispatcher.messages if m.get("custom")]
    return cards[0] if cards else None


def test_the_owner_gets_the_whole_picture_with_the_phone(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, _ = _query("查一下张伟的档案", "E02", domain, customer_name="张伟")

    assert responses(dispatcher) == ["utter_customer_360"]
    text = dispatcher.messages[0]
    assert text["name"] == "张伟" and text["phone"] == ZHANG_PHONE
    assert ZHANG_NOTE in text["notes"]
    # Not scored by a refresh yet: no RFM, churn risk as a percent (she bought five days ago).
    assert (text["rfm"], text["churn_risk"]) == ("待评分", "2%")
    card = _card(dispatcher)
    assert card is not None and card["card"] == "customer_360"
    assert card["data"]["customer_id"] == "C0001" and card["data"]["url"] == "/customers/C0001"
    with action_store() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.action == "view_customer")).all()[-1]
        assert (row.actor_id, row.entity_id) == ("E02", "C0001")


def test_a_customer_asking_for_a_file_gets_nothing_of_it(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, _ = _query("查一下张伟的档案", None, domain, customer_name="张伟")

    assert responses(dispatcher) == ["utter_staff_only"]
    assert ZHANG_PHONE not in said(dispatcher) and ZHANG_NOTE not in said(dispatcher)
    assert ZHANG_PHONE[-4:] not in said(dispatcher) and "C0001" not in said(dispatcher)


def test_a_forged_role_in_metadata_without_an_employee_is_a_customer(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    tracker = staff_tracker("查一下张伟的档案", intent="query_customer")
    tracker.latest_message["metadata"] = {"role": "admin", "principal_id": "E99"}

    dispatcher, _ = run(ActionQueryCustomer(), tracker, domain)

    assert responses(dispatcher) == ["utter_staff_only"]


@pytest.mark.parametrize(
    ("employee", "sees_zhang", "sees_wang"),
    [
        ("E01", True, False),  # manager 华东
        ("E02", True, False),  # sales, owns 张伟
        ("E03", False, True),  # sales, owns 王芳
        ("E04", False, False),  # sales 华南
        ("E06", True, False),  # service, handles a ticket of 张伟 (T09001)
        ("E07", False, False),  # service, no ticket of either
        ("E08", True, True),  # admin
    ],
)
def test_each_role_sees_exactly_its_scope(
    employee: str,
    sees_zhang: bool,
    sees_wang: bool,
    action_store: sessionmaker[Session],
    domain: dict[str, Any],
) -> None:
    for name, sees, phone in (("张伟", sees_zhang, ZHANG_PHONE), ("王芳", sees_wang, "17205673406")):
        dispatcher, _ = _query(f"查一下{name}的档案", employee, domain, customer_name=name)

        card = _card(dispatcher)
        shown = card["data"]["profile"]["name"] if card else None
        assert (shown == name) is sees
        if not sees:
            # Nothing of the customer: at most another customer in scope whose name starts alike.
            assert phone not in said(dispatcher) and phone[-4:] not in said(dispatcher)


def test_only_the_owner_sees_the_phone_in_full(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, _ = _query("张伟", "E01", domain, customer_name="张伟")

    assert responses(dispatcher) == ["utter_customer_360"]
    assert ZHANG_PHONE not in said(dispatcher)


def test_a_picked_id_outside_the_scope_is_not_found(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, _ = _query('/query_customer{"customer_id":"C0003"}', "E02", domain, customer_id="C0003")

    assert responses(dispatcher) == ["utter_customer_not_found"]
    assert "王芳" not in said(dispatcher) and "华峰" not in said(dispatcher)


def test_several_matches_are_offered_as_buttons(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, _ = _query("华峰科技的客户资料", "E03", domain, customer_name="华峰科技")

    assert responses(dispatcher) == ["utter_pick_customer"]
    payloads = [b["payload"] for b in dispatcher.messages[0]["buttons"]]
    assert '/query_customer{"customer_id": "C0003"}' in payloads
    assert len(payloads) >= 2


def test_an_unknown_name_is_not_found(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    dispatcher, _ = _query("查一下欧阳娜娜", "E08", domain, customer_name="欧阳娜娜")

    assert responses(dispatcher) == ["utter_customer_not_found"]


# --- updates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("把李娜的手机号改成13912345678", "phone", "13912345678"),
        ("王芳的邮箱换成 wf@huafeng.com", "email", "wf@huafeng.com"),
        ("李娜搬去杭州了", "city", "杭州"),
        ("张伟的城市改为上海", "city", "上海"),
        ("孔思远的生日是1993年4月21日", "birthday", "1993年4月21日"),
        ("给张伟加个备注：喜欢周末送货", "notes", "喜欢周末送货"),
        ("韦海燕的偏好加一条：开会安排在下午", "preferences", "开会安排在下午"),
    ],
)
def test_the_field_and_value_are_read_from_the_sentence(text: str, field: str, value: str) -> None:
    assert read_customer_change(text) == (field, value)


def _change_turn(
    text: str,
    draft: dict[str, Any] | None,
    domain: dict[str, Any],
    *,
    intent: str = "inform",
    employee: str = "E02",
    **entities: str,
) -> tuple[Any, dict[str, Any]]:
    slots = {"customer_change": json.dumps(draft, ensure_ascii=False) if draft else None}
    tracker = staff_tracker(
        text,
        employee=employee,
        intent=intent,
        entities=entities,
        slots=slots,
        requested_slot="customer_change_decision" if draft else None,
        active_loop="customer_change_form",
    )
    return run(ValidateCustomerChangeForm(), tracker, domain)


def _ask(draft: dict[str, Any], domain: dict[str, Any]) -> Any:
    tracker = staff_tracker(
        "", employee="E02", slots={"customer_change": json.dumps(draft, ensure_ascii=False)}
    )
    dispatcher, _ = run(ActionAskCustomerChangeDecision(), tracker, domain)
    return dispatcher


def _finish(draft: dict[str, Any], decision: str, domain: dict[str, Any], employee: str = "E02") -> Any:
    slots = {"customer_change": json.dumps(draft, ensure_ascii=False), "customer_change_decision": decision}
    return run(
        ActionFinishCustomerChange(),
        staff_tracker("确认", employee=employee, intent="affirm", slots=slots),
        domain,
    )


def test_an_update_is_confirmed_then_saved_and_audited(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _change_turn(
        "把李娜的手机号改成13912345678", None, domain, intent="update_customer", customer_name="李娜"
    )
    draft = json.loads(slots["customer_change"])
    assert draft["customer_id"] == "C0002" and draft["field"] == "phone" and draft["value"] == "13912345678"
    assert slots["customer_change_decision"] is None

    asked = _ask(draft, domain)
    assert responses(asked) == ["utter_customer_change_confirm"]
    assert asked.messages[0]["value"] == "13912345678"

    _, decided = _change_turn("确认", draft, domain, intent="affirm")
    assert decided == {"customer_change_decision": "confirmed"}
    with action_store() as session:
        assert session.get(Customer, "C0002").phone != "13912345678"  # nothing saved before 确认

    dispatcher, reset = _finish(draft, "confirmed", domain)
    assert responses(dispatcher) == ["utter_customer_changed"]
    assert reset == {"customer_change": None, "customer_change_decision": None}
    with action_store() as session:
        assert session.get(Customer, "C0002").phone == "13912345678"
        row = session.scalars(select(AuditLog).where(AuditLog.action == "update_customer")).one()
        assert row.actor_id == "E02" and "13912345678" not in json.dumps(row.detail, ensure_ascii=False)


def test_a_correction_replaces_the_value_and_an_invalid_one_is_refused_politely(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    draft = {"customer_id": "C0002", "customer": "李娜", "field": "phone", "value": "13912345678"}

    dispatcher, slots = _change_turn("不对，是13912345679", draft, domain, intent="deny")
    assert json.loads(slots["customer_change"])["value"] == "13912345679"
    assert slots["customer_change_decision"] is None

    dispatcher, slots = _change_turn("不对，应该是 1391234", draft, domain, intent="deny")
    assert responses(dispatcher) == ["utter_customer_change_invalid_phone"]
    assert json.loads(slots["customer_change"])["value"] is None


def test_a_birthday_in_the_future_is_refused(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, slots = _change_turn(
        "张伟的生日改成2030年1月1日", None, domain, intent="update_customer", customer_name="张伟"
    )

    assert responses(dispatcher) == ["utter_customer_change_invalid_birthday"]
    assert json.loads(slots["customer_change"])["value"] is None


def test_cancel_saves_nothing(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    draft = {"customer_id": "C0002", "customer": "李娜", "field": "city", "value": "杭州"}
    _, decided = _change_turn("取消", draft, domain, intent="deny")
    assert decided == {"customer_change_decision": "cancelled"}

    dispatcher, _ = _finish(draft, "cancelled", domain)

    assert responses(dispatcher) == ["utter_customer_change_cancelled"]
    with action_store() as session:
        assert session.get(Customer, "C0002").city == "上海"


def test_a_note_added_keeps_the_notes_already_there(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _change_turn(
        "给张伟加个备注：喜欢周末送货", None, domain, intent="update_customer", customer_name="张伟"
    )
    draft = json.loads(slots["customer_change"])
    assert responses(_ask(draft, domain)) == ["utter_customer_change_confirm_append"]

    _finish(draft, "confirmed", domain)

    with action_store() as session:
        notes = session.get(Customer, "C0001").notes
    assert notes.startswith(ZHANG_NOTE) and notes.endswith("喜欢周末送货")


@pytest.mark.parametrize("employee", [None, "E03", "E04"])
def test_nobody_outside_the_scope_can_update(
    employee: str | None, action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    if employee is None:
        tracker = staff_tracker(
            "张伟的城市改为杭州", intent="update_customer", entities={"customer_name": "张伟"}
        )
        dispatcher, slots = run(ValidateCustomerChangeForm(), tracker, domain)
        assert responses(dispatcher) == ["utter_staff_only"]
        assert slots == {"customer_change_decision": "refused"}
    else:
        _, slots = _change_turn(
            "张伟的城市改为杭州",
            None,
            domain,
            intent="update_customer",
            employee=employee,
            customer_name="张伟",
        )
        assert json.loads(slots["customer_change"]).get("customer_id") is None
    # Even a draft forged into the slot is refused by the store.
    draft = {"customer_id": "C0001", "customer": "张伟", "field": "city", "value": "杭州"}
    dispatcher, _ = _finish(draft, "confirmed", domain, employee=employee or "E99")
    assert responses(dispatcher)[0] in ("utter_customer_not_found", "utter_staff_only")
    with action_store() as session:
        assert session.get(Customer, "C0001").city == "上海"
