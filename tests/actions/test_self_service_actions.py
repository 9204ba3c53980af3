"""Self-service actions on the demo store: verification, orders, complaints, ratings, opt-out, hand-off."""

import asyncio
import time
from datetime import date
from typing import Any

import pytest
from action_support import make_tracker, rendered_buttons
from rasa_sdk import Action, FormValidationAction
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from actions.complaints import (
    ActionAskComplaintCategory,
    ActionAskComplaintOrder,
    ActionAskComplaintPhone,
    ActionStoreRating,
    ActionSubmitComplaint,
    ValidateComplaintForm,
)
from actions.handoff import ActionHandleFallback, ActionRequestHuman
from actions.identity import (
    ActionAfterVerification,
    ActionSessionStart,
    ActionUnsubscribe,
    ValidateVerifyForm,
)
from crm_store import clock
from crm_store.access import CUSTOMER
from crm_store.handoff import get_handoff
from crm_store.models import Customer, HandoffCase, Ticket
from crm_store.wechat_links import link, unlink


def _run(
    action: Action, dispatcher: CollectingDispatcher, domain: dict[str, Any], **tracker: Any
) -> list[Any]:
    return list(asyncio.run(action.run(dispatcher, make_tracker(**tracker), domain)))


def _slots(events: list[Any]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def _responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m["response"] for m in dispatcher.messages if m.get("response")]


def _validate(
    form: FormValidationAction, dispatcher: CollectingDispatcher, domain: dict[str, Any], **tracker: Any
) -> dict[str, Any]:
    return _slots(_run(form, dispatcher, domain, **tracker))


def test_phone_and_order_of_the_same_customer_verify(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = _validate(
        ValidateVerifyForm(),
        dispatcher,
        domain,
        text="SO202611180001",
        slots={"requested_slot": "verify_order_id", "verify_phone": "18201164104"},
        active_loop="verify_form",
        just_extracted={"verify_order_id": "SO202611180001"},
    )

    assert slots["verified_customer_id"] == "C0001"
    assert slots["customer_label"] == "张女士"
    assert slots["verified_phone_masked"] == "182****4104"
    assert _responses(dispatcher) == ["utter_verified"]


def test_mismatch_says_how_many_tries_are_left_without_saying_which_part_was_wrong(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = _validate(
        ValidateVerifyForm(),
        dispatcher,
        domain,
        slots={"requested_slot": "verify_order_id", "verify_phone": "13800138000"},
        active_loop="verify_form",
        just_extracted={"verify_order_id": "SO202611180001"},
    )

    assert slots["verify_phone"] is None and slots["verify_order_id"] is None
    assert "verified_customer_id" not in slots
    assert _responses(dispatcher) == ["utter_verify_mismatch"]
    assert dispatcher.messages[0]["attempts_left"] == 2


FOLLOWER = "oFollower0000000000000000001"


def test_a_linked_wechat_followers_session_starts_verified(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    with action_store.begin() as session:
        link(session, FOLLOWER, "C0001", actor=CUSTOMER)

    events = _run(ActionSessionStart(), dispatcher, domain, sender_id=f"wechat:{FOLLOWER}")

    assert events[0]["event"] == "session_started"
    assert (events[-1]["event"], events[-1]["name"]) == ("action", "action_listen")
    slots = _slots(events)
    assert slots["verified_customer_id"] == "C0001"
    assert slots["customer_label"].startswith("张") and "伟" not in slots["customer_label"]
    assert (
        slots["verified_phone_masked"].endswith("4104")
        and "18201164104" not in slots["verified_phone_masked"]
    )
    assert dispatcher.messages == []  # nothing said: the follower's own message is answered next


@pytest.mark.parametrize("sender", [f"wechat:{FOLLOWER}", "web-3f9c2a7e", f"staff:E02:{FOLLOWER}"])
def test_other_sessions_start_as_rasas_own(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any], sender: str
) -> None:
    with action_store.begin() as session:
        link(session, FOLLOWER, "C0001", actor=CUSTOMER)
        unlink(session, FOLLOWER)  # "解绑": the next session verifies again

    events = _run(ActionSessionStart(), dispatcher, domain, sender_id=sender)

    assert [e["event"] for e in events] == ["session_started", "action"]
    assert dispatcher.messages == []


def test_after_verification_the_orders_asked_for_are_listed(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    tracker_events = [
        {"event": "user", "text": "我的订单", "parse_data": {"intent": {"name": "list_my_orders"}}},
        {"event": "active_loop", "name": "verify_form"},
    ]
    tracker = make_tracker(slots={"verified_customer_id": "C0001"})
    tracker.events[:0] = tracker_events
    events = list(asyncio.run(ActionAfterVerification().run(dispatcher, tracker, domain)))

    assert _responses(dispatcher) == ["utter_my_orders"]
    assert "无线蓝牙耳机 Air3" in dispatcher.messages[0]["order_lines"]
    assert _slots(events)["listed_orders"][0] == "SO202611180001"


def test_complaint_description_from_the_first_message_is_kept_and_categorised(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    tracker = make_tracker(text="我要投诉，快递三天了还没送到", intent="file_complaint")
    events = asyncio.run(ValidateComplaintForm().run(dispatcher, tracker, domain))

    slots = _slots(list(events))
    assert slots["complaint_description"] == "我要投诉，快递三天了还没送到"
    assert slots["complaint_category_guess"] == "物流配送"


def test_verified_customer_naming_a_product_in_the_complaint_gets_that_order(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    tracker = make_tracker(
        text="我要投诉，蓝牙耳机那单左耳没有声音",
        intent="file_complaint",
        slots={"verified_customer_id": "C0001"},
    )
    events = asyncio.run(ValidateComplaintForm().run(dispatcher, tracker, domain))

    assert _slots(list(events))["complaint_order"] == "SO202611180001"


def test_bare_complaint_asks_for_a_description(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    tracker = make_tracker(text="我要投诉", intent="file_complaint")
    events = asyncio.run(ValidateComplaintForm().run(dispatcher, tracker, domain))

    assert "complaint_description" not in _slots(list(events))


def test_submitting_a_complaint_writes_one_ticket_and_asks_for_a_rating(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    with action_store() as session:
        before = session.scalar(select(func.count()).select_from(Ticket))
    slots = {
        "complaint_description": "客服电话一直没人接，态度也不好",
        "complaint_order": "无",
        "complaint_category": "服务态度",
        "complaint_phone": "13800138000",
    }

    events = _run(ActionSubmitComplaint(), dispatcher, domain, slots=slots)

    with action_store() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == before + 1
        ticket = session.scalars(select(Ticket).order_by(Ticket.ticket_id.desc())).first()
    assert ticket is not None and ticket.category == "服务态度" and ticket.customer_id is None
    assert _responses(dispatcher) == ["utter_complaint_filed", "utter_ask_rating"]
    assert dispatcher.messages[0]["ticket_id"] == ticket.ticket_id
    assert _slots(events)["rating_target"] == f"ticket:{ticket.ticket_id}"


def test_an_unverified_person_cannot_attach_someone_elses_order(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = {
        "complaint_description": "耳机左耳没有声音",
        "complaint_order": "SO202611180001",
        "complaint_category": "产品质量",
        "complaint_phone": "13800138000",
    }

    _run(ActionSubmitComplaint(), dispatcher, domain, slots=slots)

    with action_store() as session:
        ticket = session.scalars(select(Ticket).order_by(Ticket.ticket_id.desc())).first()
    assert ticket is not None and ticket.order_id is None and ticket.customer_id is None
    assert "SO202611180001" in (ticket.description or "")


def test_rating_is_stored_on_the_ticket(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _run(ActionStoreRating(), dispatcher, domain, text="4分吧", slots={"rating_target": "ticket:T09001"})

    with action_store() as session:
        assert session.get(Ticket, "T09001").rating == 4  # type: ignore[union-attr]
    assert _responses(dispatcher) == ["utter_thanks_for_rating"]


def test_a_rating_in_words_is_stored_on_the_ticket(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _run(ActionStoreRating(), dispatcher, domain, text="非常满意", slots={"rating_target": "ticket:T09001"})

    with action_store() as session:
        assert session.get(Ticket, "T09001").rating == 5  # type: ignore[union-attr]


def test_a_rating_for_a_ticket_that_does_not_exist_is_answered_politely(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    events = _run(ActionStoreRating(), dispatcher, domain, text="5", slots={"rating_target": "ticket:T99999"})

    assert _responses(dispatcher) == ["utter_nothing_to_rate"]
    assert _slots(events) == {"rating_target": None}


def test_a_complaint_about_another_customers_order_is_refused_by_its_code(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = {
        "verified_customer_id": "C0001",
        "complaint_description": "耳机左耳没有声音",
        "complaint_order": "SO202611100004",  # C0005's
        "complaint_category": "产品质量",
        "complaint_phone": "18201164104",
    }

    events = _run(ActionSubmitComplaint(), dispatcher, domain, slots=slots)

    assert _responses(dispatcher) == ["utter_complaint_not_filed_order"]
    assert _slots(events)["complaint_order"] is None


def test_the_registered_phone_is_the_contact_of_a_verified_customers_complaint(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = {
        "verified_customer_id": "C0001",
        "complaint_description": "耳机左耳没有声音",
        "complaint_order": "SO202611180001",
        "complaint_category": "产品质量",
        "complaint_phone": "预留号码",
    }

    _run(ActionSubmitComplaint(), dispatcher, domain, slots=slots)

    with action_store() as session:
        ticket = session.scalars(select(Ticket).order_by(Ticket.ticket_id.desc())).first()
    assert ticket is not None
    assert (ticket.customer_id, ticket.order_id, ticket.contact_phone) == (
        "C0001",
        "SO202611180001",
        "18201164104",
    )


# --- buttons: the fixed words come from the domain, in the order the customer sees them ---------


def test_the_order_question_lists_the_customers_orders_then_no_order(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _run(ActionAskComplaintOrder(), dispatcher, domain, slots={"verified_customer_id": "C0001"})

    buttons = rendered_buttons(domain, dispatcher.messages[0])
    assert _responses(dispatcher) == ["utter_ask_complaint_order_listed"]
    assert buttons[0]["payload"] == '/inform{"order_id":"SO202611180001"}'
    assert buttons[-1] == {"title": "不涉及具体订单", "payload": "/deny"}


def test_the_category_question_offers_the_guess_first(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _run(ActionAskComplaintCategory(), dispatcher, domain, slots={"complaint_category_guess": "物流配送"})

    buttons = rendered_buttons(domain, dispatcher.messages[0])
    assert buttons[0] == {"title": "对，是物流配送", "payload": "/affirm"}
    assert [b["title"] for b in buttons[1:]] == ["产品质量", "服务态度", "价格争议", "售后维修", "其他"]


def test_the_phone_question_offers_the_registered_phone(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = {"verified_customer_id": "C0001", "verified_phone_masked": "182****4104"}
    _run(ActionAskComplaintPhone(), dispatcher, domain, slots=slots)

    assert _responses(dispatcher) == ["utter_ask_complaint_phone_registered"]
    assert rendered_buttons(domain, dispatcher.messages[0]) == [{"title": "可以", "payload": "/affirm"}]


def test_opt_out_by_phone_sets_the_flag(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _run(ActionUnsubscribe(), dispatcher, domain, slots={"unsubscribe_phone": "17205673406"})

    with action_store() as session:
        assert session.get(Customer, "C0003").opt_out is True  # type: ignore[union-attr]
    assert _responses(dispatcher) == ["utter_unsubscribed"]
    assert dispatcher.messages[0]["masked_phone"] == "172****3406"


def test_asking_for_a_person_opens_one_case(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _run(ActionRequestHuman(), dispatcher, domain, text="转人工")
    _run(ActionRequestHuman(), dispatcher, domain, text="快点转人工")

    with action_store() as session:
        cases = session.scalars(select(HandoffCase).where(HandoffCase.sender_id == "test-sender")).all()
    assert len(cases) == 1
    assert _responses(dispatcher)[0] in {"utter_handoff_opened", "utter_handoff_after_hours"}


def test_a_case_opened_on_a_pinned_day_has_its_transcript_on_that_day(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    # CRM_TODAY is 2026-11-23 (the action_store fixture); Rasa stamps events with the real time.
    tracker = make_tracker(text="转人工")
    for event in tracker.events:
        event["timestamp"] = time.time()
    tracker.events.insert(0, {"event": "bot", "text": "您好", "timestamp": time.time() - 60})
    asyncio.run(ActionRequestHuman().run(dispatcher, tracker, domain))

    with action_store() as session:
        case_id = session.scalar(select(HandoffCase.id).where(HandoffCase.sender_id == "test-sender"))
        assert case_id is not None
        case = get_handoff(session, case_id=case_id)
    assert case is not None and case.opened_at.date() == date(2026, 11, 23) == clock.today()
    assert [(e.who, e.at.date()) for e in case.transcript] == [
        ("bot", date(2026, 11, 23)),
        ("customer", date(2026, 11, 23)),
    ]
    assert case.transcript[0].at < case.transcript[1].at <= clock.now()


def test_second_misunderstanding_in_a_row_goes_to_a_person(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _misunderstand_after_a_fallback(dispatcher, domain, previous="qwerty", fallback_reply=[])

    assert _responses(dispatcher)[0] == "utter_fallback_to_human"
    assert _handoff_opened(action_store)


def _misunderstand_after_a_fallback(
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
    *,
    previous: str,
    fallback_reply: list[dict[str, Any]],
) -> None:
    """The customer's previous message went to the fallback, which replied with `fallback_reply`;
    the classifier does not understand this one either."""
    tracker = make_tracker(text="asdfgh")
    tracker.events[:0] = [
        {"event": "user", "text": previous},
        {"event": "action", "name": "action_handle_fallback"},
        *fallback_reply,
        {"event": "action", "name": "action_listen"},
    ]
    asyncio.run(ActionHandleFallback().run(dispatcher, tracker, domain))


def _handoff_opened(action_store: sessionmaker[Session]) -> bool:
    with action_store() as session:
        return session.scalar(select(HandoffCase).where(HandoffCase.sender_id == "test-sender")) is not None


@pytest.mark.parametrize(
    "faq_reply",
    [
        [
            {"event": "bot", "text": "单笔订单满99元包邮……"},
            {"event": "slot", "name": "faq_answered_id", "value": "F004"},
        ],
        [
            {
                "event": "bot",
                "text": "您是想问：",
                "data": {"buttons": [{"title": "运费怎么计算？", "payload": '/ask_faq{"faq_id": "F004"}'}]},
            }
        ],
    ],
    ids=["answered", "suggested"],
)
def test_a_fallback_the_faqs_answered_is_not_counted_as_a_misunderstanding(
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
    faq_reply: list[dict[str, Any]],
) -> None:
    _misunderstand_after_a_fallback(dispatcher, domain, previous="满多少包邮啊", fallback_reply=faq_reply)

    assert _responses(dispatcher)[0] != "utter_fallback_to_human"
    assert not _handoff_opened(action_store)


def test_first_misunderstanding_only_asks_to_rephrase(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _run(ActionHandleFallback(), dispatcher, domain, text="asdfgh")

    assert _responses(dispatcher) == ["utter_default"]


def test_unsure_classifier_offers_the_likeliest_services_as_buttons(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    # Not worded as a question, so the FAQs are not searched (see test_faq_actions.py).
    tracker = make_tracker(text="那个东西的事情")
    tracker.latest_message["intent_ranking"] = [
        {"name": "nlu_fallback", "confidence": 0.45},
        {"name": "check_order_status", "confidence": 0.30},
        {"name": "greet", "confidence": 0.10},
        {"name": "file_complaint", "confidence": 0.08},
        {"name": "ask_faq", "confidence": 0.05},
        {"name": "request_human", "confidence": 0.02},
    ]
    asyncio.run(ActionHandleFallback().run(dispatcher, tracker, domain))

    assert _responses(dispatcher) == ["utter_clarify"]
    assert rendered_buttons(domain, dispatcher.messages[0]) == [
        {"title": "查订单物流", "payload": "/check_order_status"},
        {"title": "我要投诉", "payload": "/file_complaint"},
        {"title": "咨询常见问题", "payload": "/ask_faq"},
    ]
    with action_store() as session:
        assert session.scalar(select(HandoffCase).where(HandoffCase.sender_id == "test-sender")) is None


def test_no_thanks_while_asked_for_a_phone_leaves_the_form_instead_of_being_read_as_a_phone(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    tracker = make_tracker(
        text="不用了", intent="deny", slots={"requested_slot": "verify_phone"}, active_loop="verify_form"
    )
    events = asyncio.run(ValidateVerifyForm().run(dispatcher, tracker, domain))

    # No slot filled: Rasa rejects the form's turn and the "give up verification" rule answers.
    assert "verify_phone" not in _slots(list(events))
    assert dispatcher.messages == []
