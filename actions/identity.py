"""Verified identity, the customer's own orders, and opting out.

Verification (phone + one order number of that customer) lasts for the conversation session:
`verified_customer_id` is a slot, and Rasa's session config drops slots when a session ends.
"""

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.support import (
    StoreUnavailable,
    is_requested,
    latest_entity,
    latest_intent,
    latest_text,
    store_or_apology,
    store_session,
    tell_open_tickets,
    verified_customer,
)
from crm_store.customers import opt_out_from_chat, recent_orders
from crm_store.errors import NotFound
from crm_store.formatting import order_lines
from crm_store.identity import Verification, verify_customer
from crm_store.orders import parse_order_id
from crm_store.privacy import conversation_key, mask_phone, normalise_phone
from crm_store.wechat_links import recognised_follower

logger = logging.getLogger(__name__)

# A marker that fills the form's slots when verification is locked, so the form ends at once.
_LOCKED = "locked"


# Answers that leave the form rather than fill it: the rules then stop asking.
_LEAVING_INTENTS = ("deny", "goodbye", "request_human")


def _typed_answer(tracker: Tracker, slot: str) -> str | None:
    """The whole message, when the form just asked for `slot` and the customer is not leaving."""
    if not is_requested(tracker, slot) or latest_intent(tracker) in _LEAVING_INTENTS:
        return None
    return latest_text(tracker) or None


def extract_phone(tracker: Tracker, slot: str) -> dict[str, Any]:
    """A phone from the entity, or from the whole message when the form just asked for it."""
    phone = latest_entity(tracker, "phone") or _typed_answer(tracker, slot)
    return {slot: phone} if phone else {}


def extract_order_number(tracker: Tracker, slot: str) -> dict[str, Any]:
    order_id = latest_entity(tracker, "order_id") or _typed_answer(tracker, slot)
    return {slot: order_id} if order_id else {}


class ValidateVerifyForm(FormValidationAction):
    def name(self) -> str:
        return "validate_verify_form"

    async def extract_verify_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return extract_phone(tracker, "verify_phone")

    async def extract_verify_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return extract_order_number(tracker, "verify_order_id")

    def validate_verify_phone(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        phone = normalise_phone(str(slot_value))
        if phone is None:
            dispatcher.utter_message(response="utter_verify_phone_invalid")
            return {"verify_phone": None}
        order_id = parse_order_id(str(tracker.get_slot("verify_order_id") or ""))
        if order_id is None:
            return {"verify_phone": phone}
        return self._verify(dispatcher, tracker, phone=phone, order_id=order_id)

    def validate_verify_order_id(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        order_id = parse_order_id(str(slot_value))
        if order_id is None:
            dispatcher.utter_message(response="utter_verify_order_invalid")
            return {"verify_order_id": None}
        phone = normalise_phone(str(tracker.get_slot("verify_phone") or ""))
        if phone is None:
            return {"verify_order_id": order_id}
        return self._verify(dispatcher, tracker, phone=phone, order_id=order_id)

    def _verify(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, *, phone: str, order_id: str
    ) -> dict[str, Any]:
        # The order number was only given to prove identity: it must not start an order lookup.
        cleared = {"order_id": None}
        try:
            with store_or_apology(dispatcher, "verifying a customer") as session:
                result = verify_customer(
                    session, conversation=tracker.sender_id, phone=phone, order_id=order_id
                )
                session.commit()
        except StoreUnavailable:
            return {**cleared, "verify_phone": _LOCKED, "verify_order_id": _LOCKED}
        if result.verified:
            return {
                **cleared,
                "verify_phone": phone,
                "verify_order_id": order_id,
                **_verified(dispatcher, result),
            }
        if result.outcome == "locked" and result.locked_until is not None:
            dispatcher.utter_message(response="utter_verify_locked", until=f"{result.locked_until:%H:%M}")
            return {**cleared, "verify_phone": _LOCKED, "verify_order_id": _LOCKED}
        if result.outcome == "invalid":
            dispatcher.utter_message(response="utter_verify_phone_invalid")
        else:
            dispatcher.utter_message(response="utter_verify_mismatch", attempts_left=result.attempts_left)
        return {**cleared, "verify_phone": None, "verify_order_id": None}


def _verified(dispatcher: CollectingDispatcher, result: Verification) -> dict[str, Any]:
    """Greet the customer who proved who they are; the slots that remember it for the session."""
    dispatcher.utter_message(
        response="utter_verified", customer_label=result.display_name, masked_phone=result.masked_phone
    )
    return _verified_slots(result)


def _verified_slots(result: Verification) -> dict[str, Any]:
    return {
        "verified_customer_id": result.customer_id,
        "customer_label": result.display_name,
        "verified_phone_masked": result.masked_phone,
    }


class ActionSessionStart(Action):
    """Rasa's session start, plus: a WeChat follower linked to a customer starts the session verified.

    Like Rasa's own (`carry_over_slots_to_new_session: false`): a new session, then listen. The
    follower proved who they are with phone and order number once, in the chat, which linked their
    openid (crm_store.wechat_links); unlinking ("解绑") ends this. When the store cannot be read, the
    session starts as usual and the follower verifies if a request needs it.
    """

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        try:
            with store_session() as session:
                follower = recognised_follower(session, tracker.sender_id)
        except SQLAlchemyError:
            # No apology: the customer asked nothing yet, and verifying in the chat still works.
            logger.warning("the CRM store failed while recognising a WeChat follower", exc_info=True)
            follower = None
        if follower is not None:
            logger.info("session of #%s starts verified (linked)", conversation_key(tracker.sender_id))
            events += [SlotSet(slot, value) for slot, value in _verified_slots(follower).items()]
        return [*events, ActionExecuted("action_listen")]


def request_before_verification(tracker: Tracker) -> str | None:
    """The intent that made the assistant ask for verification, read back from the conversation.

    The rules start `verify_form` right after that intent, so it is the last user intent before
    the form became active.
    """
    form_started = False
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name") == "verify_form":
            form_started = True
        elif form_started and event.get("event") == "user":
            intent = (event.get("parse_data") or {}).get("intent") or {}
            return str(intent.get("name")) if intent.get("name") else None
    return None


def list_orders(dispatcher: CollectingDispatcher, customer_id: str) -> list[EventType]:
    try:
        with store_or_apology(dispatcher, "listing the customer's orders") as session:
            orders = recent_orders(session, customer_id=customer_id)
    except StoreUnavailable:
        return []
    if not orders:
        dispatcher.utter_message(response="utter_no_orders")
        return [SlotSet("listed_orders", [])]
    # Each button is the order's position and number, data of the store.
    buttons = [
        {"title": f"{n}. {order.order_id}", "payload": f'/inform{{"order_id":"{order.order_id}"}}'}
        for n, order in enumerate(orders, start=1)
    ]
    dispatcher.utter_message(response="utter_my_orders", order_lines=order_lines(orders), buttons=buttons)
    return [SlotSet("listed_orders", [order.order_id for order in orders])]


class ActionAfterVerification(Action):
    """Runs when the verification form ends: do what the customer asked for before it."""

    def name(self) -> str:
        return "action_after_verification"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SlotSet("verify_phone", None), SlotSet("verify_order_id", None)]
        customer_id = verified_customer(tracker)
        if customer_id is None:
            return events
        request = request_before_verification(tracker)
        if request == "list_my_orders":
            events += list_orders(dispatcher, customer_id)
        elif request == "check_complaint_status":
            events += tell_open_tickets(dispatcher, customer_id)
        elif request == "unsubscribe":
            events += unsubscribe(dispatcher, tracker, customer_id=customer_id, phone=None)
        else:
            dispatcher.utter_message(response="utter_how_else_can_i_help")
        return events


class ActionListMyOrders(Action):
    def name(self) -> str:
        return "action_list_my_orders"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        customer_id = verified_customer(tracker)
        if customer_id is None:
            # The rules verify first; reaching here unverified means the policy strayed.
            dispatcher.utter_message(response="utter_verification_needed")
            return []
        return list_orders(dispatcher, customer_id)


class ValidateUnsubscribeForm(FormValidationAction):
    def name(self) -> str:
        return "validate_unsubscribe_form"

    async def extract_unsubscribe_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return extract_phone(tracker, "unsubscribe_phone")

    def validate_unsubscribe_phone(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        phone = normalise_phone(str(slot_value))
        if phone is None:
            dispatcher.utter_message(response="utter_verify_phone_invalid")
        return {"unsubscribe_phone": phone}


def unsubscribe(
    dispatcher: CollectingDispatcher, tracker: Tracker, *, customer_id: str | None, phone: str | None
) -> list[EventType]:
    """Opt out the verified customer, or the customer whose phone this is."""
    events: list[EventType] = [SlotSet("unsubscribe_phone", None)]
    try:
        with store_or_apology(dispatcher, "opting out") as session:
            done = opt_out_from_chat(
                session, customer_id=customer_id, phone=phone, actor_id=conversation_key(tracker.sender_id)
            )
            session.commit()
    except StoreUnavailable:
        return events
    except NotFound:
        dispatcher.utter_message(response="utter_unsubscribe_phone_unknown", masked_phone=mask_phone(phone))
        return events
    response = "utter_unsubscribed" if done.changed else "utter_already_unsubscribed"
    dispatcher.utter_message(response=response, masked_phone=done.masked_phone)
    return events


class ActionUnsubscribe(Action):
    """Opt out of marketing and care messages: the verified customer, or the owner of a phone."""

    def name(self) -> str:
        return "action_unsubscribe"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        phone = tracker.get_slot("unsubscribe_phone")
        return unsubscribe(
            dispatcher, tracker, customer_id=verified_customer(tracker), phone=str(phone) if phone else None
        )
