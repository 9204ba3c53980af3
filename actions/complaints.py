"""Complaints: the complaint form, filing the ticket, complaint status and satisfaction ratings.

What the customer's words mean (stop words, "no order", a rating) is decided by
`crm_store.phrases`; filing, priority and deadline by `crm_store.complaints`.
"""

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.support import (
    StoreUnavailable,
    domain_buttons,
    hand_off,
    is_requested,
    latest_entity,
    latest_intent,
    latest_text,
    store_or_apology,
    store_session,
    tell_open_tickets,
    verified_customer,
)
from crm_store.complaints import (
    NO_ORDER,
    REGISTERED_PHONE,
    file_chat_complaint,
    infer_category,
    rate_ticket,
    ticket_status,
)
from crm_store.customers import recent_orders, resolve_order_reference
from crm_store.errors import CrmError
from crm_store.formatting import receipt_fields, ticket_status_fields
from crm_store.handoff import rate_handoff, unrated_closed_case
from crm_store.orders import get_order_status, parse_order_id
from crm_store.phrases import describes_a_problem, means_no_order, named_category, parse_rating, wants_to_stop
from crm_store.privacy import normalise_phone
from crm_store.vocab import COMPLAINT_CATEGORIES, HANDOFF_REASON_SERIOUS_COMPLAINT, TICKET_PRIORITY_HIGH

logger = logging.getLogger(__name__)

# The reply to a complaint the store refused, by the error's code; any other code gets the
# general `utter_complaint_not_filed`.
NOT_FILED_RESPONSES = {
    "contact_phone_invalid": "utter_complaint_not_filed_phone",
    "order_of_another_customer": "utter_complaint_not_filed_order",
    "description_too_long": "utter_complaint_not_filed_too_long",
    "no_assignee": "utter_complaint_not_filed_no_assignee",
}


def _activating(tracker: Tracker) -> bool:
    """True on the message that starts the complaint form (it may already say what happened)."""
    return tracker.get_slot("requested_slot") is None and latest_intent(tracker) == "file_complaint"


class ValidateComplaintForm(FormValidationAction):
    def name(self) -> str:
        return "validate_complaint_form"

    async def extract_complaint_description(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = latest_text(tracker)
        if is_requested(tracker, "complaint_description"):
            leaving = wants_to_stop(text) or latest_intent(tracker) in ("deny", "goodbye")
            return {} if leaving else {"complaint_description": text}
        # A first message that already says what happened is kept instead of asking again.
        return {"complaint_description": text} if _activating(tracker) and describes_a_problem(text) else {}

    def validate_complaint_description(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        description = str(slot_value).strip()
        if not describes_a_problem(description):
            dispatcher.utter_message(response="utter_complaint_description_too_short")
            return {"complaint_description": None}
        return {"complaint_description": description, "complaint_category_guess": infer_category(description)}

    async def extract_complaint_order(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        mentioned = latest_entity(tracker, "order_id")
        if mentioned:
            return {"complaint_order": mentioned}
        text = latest_text(tracker)
        customer_id = verified_customer(tracker)
        asked = is_requested(tracker, "complaint_order")
        if not (asked or (_activating(tracker) and customer_id)) or wants_to_stop(text):
            return {}
        if asked and (latest_intent(tracker) == "deny" or means_no_order(text)):
            return {"complaint_order": NO_ORDER}
        if customer_id:
            # One of the verified customer's orders by position or product, also in the first message.
            with store_session() as session:
                picked = resolve_order_reference(recent_orders(session, customer_id=customer_id), text)
            if picked is not None:
                return {"complaint_order": picked.order_id}
        return {"complaint_order": text} if asked else {}

    def validate_complaint_order(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if slot_value == NO_ORDER:
            return {"complaint_order": NO_ORDER}
        typed = str(slot_value).strip()[:30]
        order_id = parse_order_id(typed)
        if order_id is not None:
            with store_session() as session:
                if get_order_status(session, order_id=order_id) is not None:
                    return {"complaint_order": order_id}
        # Words without a number are not a wrong order number: just ask again.
        if any(ch.isdigit() for ch in typed):
            dispatcher.utter_message(response="utter_complaint_order_unknown", order_id=typed)
        return {"complaint_order": None}

    async def extract_complaint_category(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not is_requested(tracker, "complaint_category"):
            return {}
        chosen = latest_entity(tracker, "complaint_category")
        if chosen:
            return {"complaint_category": chosen}
        text = latest_text(tracker)
        if wants_to_stop(text):
            return {}
        named = named_category(text)
        if named is not None:
            return {"complaint_category": named}
        if latest_intent(tracker) == "affirm" and tracker.get_slot("complaint_category_guess"):
            return {"complaint_category": tracker.get_slot("complaint_category_guess")}
        # A "no": drop the guess, so that the question becomes a plain choice of categories.
        return {"complaint_category": None, "complaint_category_guess": None}

    def validate_complaint_category(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"complaint_category": slot_value if slot_value in COMPLAINT_CATEGORIES else None}

    async def extract_complaint_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        phone = latest_entity(tracker, "phone")
        if phone:
            return {"complaint_phone": phone}
        if not is_requested(tracker, "complaint_phone"):
            return {}
        text = latest_text(tracker)
        # A "no" here can mean "not that number", so only explicit stop words cancel.
        if wants_to_stop(text):
            return {}
        if latest_intent(tracker) == "affirm" and verified_customer(tracker):
            return {"complaint_phone": REGISTERED_PHONE}
        return {"complaint_phone": text}

    def validate_complaint_phone(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if slot_value == REGISTERED_PHONE:
            return {"complaint_phone": REGISTERED_PHONE}
        phone = normalise_phone(str(slot_value))
        if phone is None:
            dispatcher.utter_message(response="utter_complaint_phone_invalid")
        return {"complaint_phone": phone}


class ActionAskComplaintOrder(Action):
    def name(self) -> str:
        return "action_ask_complaint_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        customer_id = verified_customer(tracker)
        buttons = []
        if customer_id:
            with store_session() as session:
                orders = recent_orders(session, customer_id=customer_id)
            # Each order's label is data of the store ("11月18日 无线蓝牙耳机 Air3（运输中）").
            buttons = [
                {"title": order.label, "payload": f'/inform{{"order_id":"{order.order_id}"}}'}
                for order in orders
            ]
        buttons += domain_buttons(domain, "utter_complaint_no_order_option")
        response = "utter_ask_complaint_order_listed" if customer_id else "utter_ask_complaint_order"
        dispatcher.utter_message(response=response, buttons=buttons)
        return []


class ActionAskComplaintCategory(Action):
    def name(self) -> str:
        return "action_ask_complaint_category"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        guess = tracker.get_slot("complaint_category_guess")
        # The categories are closed values of the store; the response's own "yes" button comes first.
        others = [c for c in COMPLAINT_CATEGORIES if c != guess]
        buttons = [{"title": c, "payload": f'/inform{{"complaint_category":"{c}"}}'} for c in others]
        if guess:
            dispatcher.utter_message(
                response="utter_ask_complaint_category_guess", guess=guess, buttons=buttons
            )
        else:
            dispatcher.utter_message(response="utter_ask_complaint_category", buttons=buttons)
        return []


class ActionAskComplaintPhone(Action):
    def name(self) -> str:
        return "action_ask_complaint_phone"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        masked = tracker.get_slot("verified_phone_masked")
        if verified_customer(tracker) and masked:
            # The response carries its own "yes" button.
            dispatcher.utter_message(response="utter_ask_complaint_phone_registered", masked_phone=masked)
        else:
            dispatcher.utter_message(response="utter_ask_complaint_phone")
        return []


_FORM_SLOTS = (
    "complaint_description",
    "complaint_order",
    "complaint_category_guess",
    "complaint_category",
    "complaint_phone",
)


def _form_started_at(tracker: Tracker) -> float:
    """When the complaint form of this conversation last became active (Rasa event timestamp)."""
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name") == "complaint_form":
            return float(event.get("timestamp") or 0.0)
    return 0.0


class ActionSubmitComplaint(Action):
    def name(self) -> str:
        return "action_submit_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SlotSet(slot, None) for slot in _FORM_SLOTS]
        try:
            with store_or_apology(dispatcher, "filing a complaint") as session:
                receipt = file_chat_complaint(
                    session,
                    customer_id=verified_customer(tracker),
                    order=tracker.get_slot("complaint_order"),
                    description=str(tracker.get_slot("complaint_description") or ""),
                    category=tracker.get_slot("complaint_category"),
                    contact_phone=str(tracker.get_slot("complaint_phone") or ""),
                    # One form, one ticket: Rasa retries an action call that timed out.
                    request_key=f"{tracker.sender_id}:{_form_started_at(tracker)}",
                )
                session.commit()
        except StoreUnavailable:
            return events
        except CrmError as refusal:
            logger.warning("complaint not filed: %s", refusal.code)
            response = NOT_FILED_RESPONSES.get(refusal.code, "utter_complaint_not_filed")
            dispatcher.utter_message(response=response, **refusal.data)
            return events
        dispatcher.utter_message(response="utter_complaint_filed", **receipt_fields(receipt))
        if receipt.priority == TICKET_PRIORITY_HIGH:
            # A serious complaint goes to a person now; the rating comes when that case closes.
            reason = HANDOFF_REASON_SERIOUS_COMPLAINT
            return events + hand_off(dispatcher, tracker, reason=reason, ticket_id=receipt.ticket_id)
        dispatcher.utter_message(response="utter_ask_rating")
        return [*events, SlotSet("rating_target", f"ticket:{receipt.ticket_id}")]


class ActionCheckComplaintStatus(Action):
    def name(self) -> str:
        return "action_check_complaint_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SlotSet("ticket_id", None)]
        ticket_id = tracker.get_slot("ticket_id")
        customer_id = verified_customer(tracker)
        if not ticket_id:
            if customer_id:
                return events + tell_open_tickets(dispatcher, customer_id)
            dispatcher.utter_message(response="utter_ask_ticket_id")
            return events
        try:
            with store_or_apology(dispatcher, "looking up a ticket") as session:
                view = ticket_status(session, ticket_id=str(ticket_id))
        except StoreUnavailable:
            return events
        if view is None:
            dispatcher.utter_message(response="utter_ticket_not_found", ticket_id=str(ticket_id)[:20])
            return events
        dispatcher.utter_message(response="utter_ticket_status", **ticket_status_fields(view))
        if view.is_overdue:
            dispatcher.utter_message(response="utter_ticket_overdue")
        return events


def _rating_target(tracker: Tracker) -> str:
    """What the rating is about: the slot, else the conversation's closed hand-off case still unrated.

    The buttons shown when a person closes a case come back as an ordinary message, so the case
    is found in the store rather than remembered.
    """
    target = str(tracker.get_slot("rating_target") or "")
    if target:
        return target
    with store_session() as session:
        case_id = unrated_closed_case(session, conversation=tracker.sender_id)
    return f"handoff:{case_id}" if case_id is not None else ""


class ActionStoreRating(Action):
    def name(self) -> str:
        return "action_store_rating"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        target = _rating_target(tracker)
        if not target:
            dispatcher.utter_message(response="utter_nothing_to_rate")
            return []
        rating = parse_rating(latest_entity(tracker, "rating"), latest_text(tracker))
        if rating is None:
            dispatcher.utter_message(response="utter_rating_unclear")
            return []
        kind, _, ident = target.partition(":")
        try:
            with store_session() as session:
                if kind == "ticket":
                    rate_ticket(session, ticket_id=ident, rating=rating)
                elif kind == "handoff":
                    rate_handoff(session, case_id=int(ident), rating=rating)
                session.commit()
        except (CrmError, ValueError):
            # ValueError: a case id in the slot that is not a number (int()).
            logger.warning("rating not stored for %s", kind)
            dispatcher.utter_message(response="utter_nothing_to_rate")
            return [SlotSet("rating_target", None)]
        except SQLAlchemyError:
            logger.exception("storing a rating failed")
            dispatcher.utter_message(response="utter_service_unavailable")
            return []
        dispatcher.utter_message(response="utter_thanks_for_rating", rating=rating)
        return [SlotSet("rating_target", None)]
