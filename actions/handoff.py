"""Hand-off to a person: on request, after two misunderstandings in a row, or for a serious complaint.

Opening a case is all the bot does (`actions.support.hand_off`): while the case is open the API
keeps the conversation away from Rasa and relays staff replies, so the bot is paused without
Rasa's help.
"""

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.support import domain_buttons, hand_off, latest_text, respond_from_faqs
from crm_store.vocab import HANDOFF_REASON_ASKED, HANDOFF_REASON_NOT_UNDERSTOOD
from knowledge.questions import looks_like_question

logger = logging.getLogger(__name__)

FALLBACK_ACTION = "action_handle_fallback"
MAX_OFFERED = 3


class ActionRequestHuman(Action):
    def name(self) -> str:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        return hand_off(dispatcher, tracker, reason=HANDOFF_REASON_ASKED)


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


def likeliest_offers(tracker: Tracker, domain: DomainDict) -> list[dict[str, str]]:
    """The buttons of `utter_clarify_offers` for the intents the customer likeliest meant, best first."""
    offers = {
        button["payload"].removeprefix("/"): button
        for button in domain_buttons(domain, "utter_clarify_offers")
    }
    ranking = [str(entry.get("name")) for entry in tracker.latest_message.get("intent_ranking") or []]
    return [offers[name] for name in ranking if name in offers][:MAX_OFFERED]


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
        events: list[EventType] = []
        if looks_like_question(text):
            result, events = respond_from_faqs(dispatcher, domain, text, admit_none=False)
            if result is None or result.decision != "none":
                return events
        if _previous_turn_was_a_fallback(tracker):
            dispatcher.utter_message(response="utter_fallback_to_human")
            return [*events, *hand_off(dispatcher, tracker, reason=HANDOFF_REASON_NOT_UNDERSTOOD)]
        offers = likeliest_offers(tracker, domain)
        if offers:
            dispatcher.utter_message(response="utter_clarify", buttons=offers)
        else:
            dispatcher.utter_message(response="utter_default")
        return events
