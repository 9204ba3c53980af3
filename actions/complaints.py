"""Complaints: the complaint form, filing the ticket, complaint status and satisfaction ratings."""

import logging
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.formatting import cn_time
from actions.handoff import hand_off
from actions.store import store_session
from actions.turns import is_requested, latest_entity, latest_intent, latest_text
from crm_store.complaints import (
    check_rating,
    create_complaint,
    infer_category,
    open_tickets,
    rate_ticket,
    ticket_status,
)
from crm_store.customers import recent_orders, registered_phone, resolve_order_reference
from crm_store.handoff import rate_handoff, unrated_closed_case
from crm_store.orders import get_order_status, parse_order_id
from crm_store.privacy import normalise_phone
from crm_store.vocab import COMPLAINT_CATEGORIES

logger = logging.getLogger(__name__)

NO_ORDER = "无"
HIGH_PRIORITY = "高"
# The verified customer's phone on file, resolved when the ticket is filed.
REGISTERED_PHONE = "预留号码"
MIN_DESCRIPTION_CHARS = 4
# Words that only say "I want to complain": what is left after them is the actual description.
_COMPLAINT_WORDS = re.compile(
    r"我要投诉|我想投诉|要投诉|投诉一下|投诉|我要反馈|反馈一下|差评|[，,。.!！?？~～\s]"
)
_STOP_WORDS = ("算了", "取消", "不投诉", "不用了", "不要了", "不弄了")
_NONE_WORDS = ("没有", "无", "不涉及", "没订单", "不是订单")


def wants_to_stop(text: str) -> bool:
    return any(word in text for word in _STOP_WORDS)


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
        # "我要投诉，耳机左耳没声音" already says what happened: keep it instead of asking again.
        activating = tracker.get_slot("requested_slot") is None and latest_intent(tracker) == "file_complaint"
        if activating and len(_COMPLAINT_WORDS.sub("", text)) >= MIN_DESCRIPTION_CHARS:
            return {"complaint_description": text}
        return {}

    def validate_complaint_description(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        description = str(slot_value).strip()
        if len(_COMPLAINT_WORDS.sub("", description)) < MIN_DESCRIPTION_CHARS:
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
        customer_id = tracker.get_slot("verified_customer_id")
        asked = is_requested(tracker, "complaint_order")
        activating = tracker.get_slot("requested_slot") is None and latest_intent(tracker) == "file_complaint"
        if not (asked or (activating and customer_id)) or wants_to_stop(text):
            return {}
        if asked and (latest_intent(tracker) == "deny" or any(word in text for word in _NONE_WORDS)):
            return {"complaint_order": NO_ORDER}
        if customer_id:
            # "耳机那单", "第二个": one of the verified customer's orders, also in the first message.
            with store_session() as session:
                picked = resolve_order_reference(recent_orders(session, customer_id=str(customer_id)), text)
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
        # Words without a number ("还在吗") are not a wrong order number: just ask again.
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
        named = [category for category in COMPLAINT_CATEGORIES if category in text]
        if len(named) == 1:
            return {"complaint_category": named[0]}
        if latest_intent(tracker) == "affirm" and tracker.get_slot("complaint_category_guess"):
            return {"complaint_category": tracker.get_slot("complaint_category_guess")}
        # "不对": drop the guess, so that the question becomes a plain choice of categories.
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
        if latest_intent(tracker) == "affirm" and tracker.get_slot("verified_customer_id"):
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
        customer_id = tracker.get_slot("verified_customer_id")
        buttons = []
        if customer_id:
            with store_session() as session:
                orders = recent_orders(session, customer_id=str(customer_id))
            buttons = [
                {"title": order.label, "payload": f'/inform{{"order_id":"{order.order_id}"}}'}
                for order in orders
            ]
        buttons.append({"title": "不涉及具体订单", "payload": "/deny"})
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
        others = [c for c in COMPLAINT_CATEGORIES if c != guess]
        buttons = [{"title": c, "payload": f'/inform{{"complaint_category":"{c}"}}'} for c in others]
        if guess:
            buttons.insert(0, {"title": f"对，是{guess}", "payload": "/affirm"})
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
        if tracker.get_slot("verified_customer_id") and masked:
            dispatcher.utter_message(
                response="utter_ask_complaint_phone_registered",
                masked_phone=masked,
                buttons=[{"title": "可以", "payload": "/affirm"}],
            )
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


class ActionSubmitComplaint(Action):
    def name(self) -> str:
        return "action_submit_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SlotSet(slot, None) for slot in _FORM_SLOTS]
        customer_id = tracker.get_slot("verified_customer_id") or None
        order = tracker.get_slot("complaint_order")
        order = None if order in (None, NO_ORDER) else str(order)
        description = str(tracker.get_slot("complaint_description") or "")
        if order and not customer_id:
            # Only a verified customer's complaint is linked to an order: anyone can type a number.
            # Staff still see which order the person named.
            description, order = f"{description}（提到的订单：{order}，身份未核实）", None
        phone = str(tracker.get_slot("complaint_phone") or "")
        try:
            with store_session() as session:
                if phone == REGISTERED_PHONE and customer_id:
                    phone = registered_phone(session, customer_id=str(customer_id)) or ""
                receipt = create_complaint(
                    session,
                    customer_id=str(customer_id) if customer_id else None,
                    order_id=order,
                    description=description,
                    category=str(tracker.get_slot("complaint_category") or "其他"),
                    contact_phone=phone,
                    channel="web",
                    # One form, one ticket: Rasa retries an action call that timed out.
                    request_key=f"{tracker.sender_id}:{_form_started_at(tracker)}",
                )
                session.commit()
        except (ValueError, LookupError) as problem:
            logger.warning("complaint not filed: %s", type(problem).__name__)
            dispatcher.utter_message(response="utter_complaint_not_filed", reason=str(problem))
            return events
        except SQLAlchemyError:
            logger.exception("filing a complaint failed")
            dispatcher.utter_message(response="utter_service_unavailable")
            return events
        dispatcher.utter_message(
            response="utter_complaint_filed",
            ticket_id=receipt.ticket_id,
            category=receipt.category,
            priority=receipt.priority,
            assignee_role=receipt.assignee_role,
            deadline=cn_time(receipt.deadline),
        )
        if receipt.priority == HIGH_PRIORITY:
            # A serious complaint goes to a person now; the rating comes when that case closes.
            return events + hand_off(dispatcher, tracker, reason="高优先级投诉", ticket_id=receipt.ticket_id)
        dispatcher.utter_message(response="utter_ask_rating")
        return [*events, SlotSet("rating_target", f"ticket:{receipt.ticket_id}")]


def _form_started_at(tracker: Tracker) -> float:
    """When the complaint form of this conversation last became active (Rasa event timestamp)."""
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name") == "complaint_form":
            return float(event.get("timestamp") or 0.0)
    return 0.0


def list_open_tickets(dispatcher: CollectingDispatcher, customer_id: str) -> list[EventType]:
    try:
        with store_session() as session:
            tickets = open_tickets(session, customer_id=customer_id)
    except SQLAlchemyError:
        logger.exception("listing open tickets failed")
        dispatcher.utter_message(response="utter_service_unavailable")
        return []
    if not tickets:
        dispatcher.utter_message(response="utter_no_open_tickets")
        return []
    lines = "\n".join(
        f"{t.ticket_id}（{t.category or '其他'}）{t.status}，时限 {cn_time(t.deadline)}" for t in tickets
    )
    dispatcher.utter_message(response="utter_open_tickets", ticket_lines=lines)
    return []


class ActionCheckComplaintStatus(Action):
    def name(self) -> str:
        return "action_check_complaint_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SlotSet("ticket_id", None)]
        ticket_id = tracker.get_slot("ticket_id")
        customer_id = tracker.get_slot("verified_customer_id")
        if not ticket_id:
            if customer_id:
                return events + list_open_tickets(dispatcher, str(customer_id))
            dispatcher.utter_message(response="utter_ask_ticket_id")
            return events
        try:
            with store_session() as session:
                view = ticket_status(session, ticket_id=str(ticket_id))
        except SQLAlchemyError:
            logger.exception("ticket lookup failed")
            dispatcher.utter_message(response="utter_service_unavailable")
            return events
        if view is None:
            dispatcher.utter_message(response="utter_ticket_not_found", ticket_id=str(ticket_id)[:20])
            return events
        dispatcher.utter_message(
            response="utter_ticket_status",
            ticket_id=view.ticket_id,
            category=view.category or "其他",
            status=view.status,
            assignee_role=view.assignee_role or "客服",
            deadline=cn_time(view.deadline),
        )
        if view.is_overdue:
            dispatcher.utter_message(response="utter_ticket_overdue")
        return events


_DIGIT = re.compile(r"[1-5]")
_CHINESE_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}


def parse_rating(entity: str | None, text: str) -> int | None:
    """1–5 from a button payload, "4分", "五星" or "非常满意"."""
    for candidate in (entity or "", text):
        if match := _DIGIT.search(candidate):
            return int(match.group())
        for word, value in _CHINESE_DIGITS.items():
            if word in candidate:
                return value
    if "非常满意" in text or "很满意" in text or "满分" in text:
        return 5
    if "不满意" in text or "太差" in text:
        return 1
    if "满意" in text:
        return 4
    return None


class ActionStoreRating(Action):
    def name(self) -> str:
        return "action_store_rating"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        target = str(tracker.get_slot("rating_target") or "")
        if not target:
            # The buttons shown when a person closes a hand-off case: rate that case.
            with store_session() as session:
                case_id = unrated_closed_case(session, conversation=tracker.sender_id)
            target = f"handoff:{case_id}" if case_id is not None else ""
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
                    rate_ticket(session, ticket_id=ident, rating=check_rating(rating))
                elif kind == "handoff":
                    rate_handoff(session, case_id=int(ident), rating=check_rating(rating))
                session.commit()
        except (ValueError, LookupError):
            logger.warning("rating not stored for %s", kind)
            dispatcher.utter_message(response="utter_nothing_to_rate")
            return [SlotSet("rating_target", None)]
        except SQLAlchemyError:
            logger.exception("storing a rating failed")
            dispatcher.utter_message(response="utter_service_unavailable")
            return []
        dispatcher.utter_message(response="utter_thanks_for_rating", rating=rating)
        return [SlotSet("rating_target", None)]
