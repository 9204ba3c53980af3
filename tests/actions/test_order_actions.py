"""The order-status actions, run as the action server runs them, on the demo store."""

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from action_support import make_tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session, sessionmaker

import actions
import actions.support
from actions.orders import ActionCheckOrderStatus, ValidateOrderStatusForm
from crm_store.db import create_engine_for, make_session_factory


def _validate(value: str, dispatcher: CollectingDispatcher, domain: dict[str, Any]) -> dict[str, Any]:
    tracker = make_tracker(
        text=value,
        slots={"requested_slot": "order_id"},
        active_loop="order_status_form",
        just_extracted={"order_id": value},
    )
    events = asyncio.run(ValidateOrderStatusForm().run(dispatcher, tracker, domain))
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def _check(order_id: str | None, dispatcher: CollectingDispatcher, domain: dict[str, Any]) -> list[Any]:
    tracker = make_tracker(slots={"order_id": order_id})
    return list(asyncio.run(ActionCheckOrderStatus().run(dispatcher, tracker, domain)))


def _responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m["response"] for m in dispatcher.messages]


@pytest.mark.parametrize(
    "typed", ["SO202611180001", "so202611180001", "ＳＯ２０２６１１１８０００１", "SO 2026 1118 0001"]
)
def test_order_number_is_accepted_in_any_reasonable_form(
    typed: str, action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = _validate(typed, dispatcher, domain)

    assert slots["order_id"] == "SO202611180001"
    assert dispatcher.messages == []


def test_malformed_order_number_is_reported_as_not_found(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = _validate("SO000", dispatcher, domain)

    assert slots["order_id"] is None
    assert _responses(dispatcher) == ["utter_order_id_malformed"]
    assert dispatcher.messages[0]["order_id"] == "SO000"


def test_unknown_order_number_is_reported_as_not_found(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    slots = _validate("SO209901019999", dispatcher, domain)

    assert slots["order_id"] is None
    assert _responses(dispatcher) == ["utter_order_not_found"]
    assert dispatcher.messages[0]["order_id"] == "SO209901019999"


def test_in_transit_order_answers_status_carrier_tracking_and_promised_date(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    events = _check("SO202611180001", dispatcher, domain)

    assert _responses(dispatcher) == ["utter_order_status_in_transit"]
    message = dispatcher.messages[0]
    assert message["status"] == "运输中"
    assert message["stage"] == "包裹正在运输途中"
    assert message["carrier"] == "顺丰速运"
    assert message["tracking_no"] == "SF1234567890"
    assert message["promised_date"] == "2026年11月24日（明天，周二）"
    # The slot is cleared so that the next question about an order asks afresh.
    assert events == [SlotSet("order_id", None)]


def test_late_order_gets_an_apology_with_days_late(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _check("SO202611100004", dispatcher, domain)

    assert _responses(dispatcher) == ["utter_order_status_in_transit", "utter_order_late_apology"]
    assert dispatcher.messages[1]["days_late"] == 8


def test_delivered_order_has_no_promised_date_or_apology(
    action_store: sessionmaker[Session], dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _check("SO202610020002", dispatcher, domain)

    assert _responses(dispatcher) == ["utter_order_status_closed"]
    assert dispatcher.messages[0]["status"] == "已签收"


def test_store_down_gets_a_polite_apology_not_an_exception(
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real engine to a port where no database listens.
    unreachable = make_session_factory(create_engine_for("postgresql+psycopg://postgres@127.0.0.1:9/none"))
    monkeypatch.setattr(actions.support, "_session_factory", lambda: unreachable)

    events = _check("SO202611180001", dispatcher, domain)
    slots = _validate("SO202611180001", dispatcher, domain)

    assert _responses(dispatcher) == ["utter_service_unavailable", "utter_service_unavailable"]
    assert events == [SlotSet("order_id", None)]
    assert slots["order_id"] is None


def test_every_response_the_actions_utter_exists_in_the_domain(domain: dict[str, Any]) -> None:
    # A misspelt response name fails silently at run time: Rasa just sends nothing.
    code = "".join(p.read_text(encoding="utf-8") for p in Path(actions.__file__).parent.glob("*.py"))
    uttered = set(re.findall(r'"(utter_\w+)"', code))

    assert "utter_order_status_in_transit" in uttered
    assert uttered - set(domain["responses"]) == set()
