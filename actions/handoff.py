"""Hand-off to a person: on request, after two misunderstandings in a row, or for a serious complaint.

Opening a case is all the bot does: while the case is open the API keeps the conversation away
from Rasa and relays staff replies (api/chat.py), so the bot is paused without Rasa's help.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.faq import respond_from_faqs
from actions.formatting import cn_time
from actions.store import store_session
from actions.turns import latest_text
from crm_store.handoff import open_handoff
from knowledge.questions import looks_like_question

logger = logging.getLogger(__name__)

FALLBACK_ACTION = "action_handle_fallback"


def transcript_of(tracker: Tracker) -> list[dict[str, Any]]:
    """What the customer and the bot said so far, for the person who takes over."""
    entries = []
    for event in tracker.events:
        kind = event.get("event")
        if kind in ("user", "bot") and event.get("text"):
            at = datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=UTC).isoformat()
            entries.append({"who": "customer" if kind == "user" else "bot", "text": event["text"], "at": at})
    return entries


def hand_off(
    dispatcher: CollectingDispatcher, tracker: Tracker, *, reason: str, ticket_id: str | None = None
) -> list[EventType]:
    customer_id = tracker.get_slot("verified_customer_id") or None
    try:
        with store_session() as session:
            opening = open_handoff(
                session,
                conversation=tracker.sender_id,
                reason=reason,
                customer_id=str(customer_id) if customer_id else None,
                ticket_id=ticket_id,
                transcript=transcript_of(tracker),
            )
            session.commit()
    except (SQLAlchemyError, LookupError, ValueError):
        logger.exception("opening a hand-off case failed")
        dispatcher.utter_message(response="utter_handoff_failed")
        return []
    if opening.answer_from is None:
        dispatcher.utter_message(response="utter_handoff_opened")
    else:
        dispatcher.utter_message(
            response="utter_handoff_after_hours", answer_from=cn_time(opening.answer_from)
        )
    return []


class ActionRequestHuman(Action):
    def name(self) -> str:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        return hand_off(dispatcher, tracker, reason="客户要求")


def _previous_turn_was_a_fallback(tracker: Tracker) -> bool:
    """True when the bot did not understand the customer's previous message either.

    A fallback that answered from the FAQs, or offered FAQs to choose from, understood well
    enough: it does not count towards the hand-off after two misunderstandings.
    """
    user_turns = 0
    answered_from_faqs = False
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            user_turns += 1
            if user_turns > 1:
                return False
        elif user_turns != 1:
            continue
        elif _answers_from_faqs(event):
            answered_from_faqs = True
        elif kind == "action" and event.get("name") != "action_listen":
            return bool(event.get("name") == FALLBACK_ACTION) and not answered_from_faqs
    return False


def _answers_from_faqs(event: dict[str, Any]) -> bool:
    """An answer (its FAQ's id set) or FAQ suggestions (buttons that ask a FAQ)."""
    if event.get("event") == "slot":
        return bool(event.get("name") == "faq_answered_id" and event.get("value"))
    buttons = (event.get("data") or {}).get("buttons") or [] if event.get("event") == "bot" else []
    return any(str(button.get("payload", "")).startswith("/ask_faq") for button in buttons)


# What a customer can be offered when the classifier is unsure, in the customer's words.
OFFERED_INTENTS: dict[str, str] = {
    "check_order_status": "查订单物流",
    "list_my_orders": "看我的订单",
    "file_complaint": "我要投诉",
    "check_complaint_status": "查投诉进度",
    "ask_faq": "咨询常见问题",
    "unsubscribe": "退订消息",
    "request_human": "转人工客服",
}
MAX_OFFERED = 3


def likeliest_offers(tracker: Tracker) -> list[dict[str, str]]:
    """Buttons for the likeliest intents the customer may have meant, best first."""
    ranking = tracker.latest_message.get("intent_ranking") or []
    names = [str(entry.get("name")) for entry in ranking if entry.get("name") in OFFERED_INTENTS]
    return [{"title": OFFERED_INTENTS[name], "payload": f"/{name}"} for name in names[:MAX_OFFERED]]


class ActionHandleFallback(Action):
    """A message the classifier was unsure of.

    One that reads like a question is searched in the FAQs first: an answer or suggestions end
    the fallback there. Otherwise (and when no FAQ fits, which is queued for staff) the likeliest
    meanings are offered; the second misunderstanding in a row goes to a person instead.
    """

    def name(self) -> str:
        return FALLBACK_ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = latest_text(tracker)
        if looks_like_question(text):
            result, events = respond_from_faqs(dispatcher, text, admit_none=False)
            if result is None or result.decision != "none":
                return events
        else:
            events = []
        if _previous_turn_was_a_fallback(tracker):
            dispatcher.utter_message(response="utter_fallback_to_human")
            return [*events, *hand_off(dispatcher, tracker, reason="连续未理解")]
        offers = likeliest_offers(tracker)
        if offers:
            dispatcher.utter_message(response="utter_clarify", buttons=offers)
        else:
            dispatcher.utter_message(response="utter_default")
        return events
