"""FAQ answers: a thin adapter from a question in the chat to the knowledge base.

The knowledge base decides (knowledge.decision): an answer is sent with 👍/👎 buttons, a
"suggest" offers the three likeliest FAQs as buttons (then "none of these"), and "none" says so,
queues the question for staff (crm_store.faqs.record_unanswered) and offers a person. The steps
are shared with the fallback (`actions.support.respond_from_faqs`).
"""

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.support import (
    knowledge_service,
    latest_entity,
    latest_intent,
    latest_text,
    queue_unanswered,
    respond_from_faqs,
    send_faq_answer,
    store_session,
)
from crm_store.errors import NotFound
from crm_store.faqs import record_feedback
from crm_store.phrases import thumbs_vote

logger = logging.getLogger(__name__)

VOTE_UP, VOTE_DOWN, VOTE_NONE_OF_THESE = "up", "down", "none_of_these"


class ActionAnswerFaq(Action):
    """Answer `ask_faq`: a chosen suggestion directly, otherwise by searching the question."""

    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        chosen = latest_entity(tracker, "faq_id")
        if chosen:
            return self._answer_chosen(dispatcher, chosen)
        question = latest_text(tracker)
        if not question or question.startswith("/"):
            # The FAQ button of the menu or a bare intent: no question to search yet.
            dispatcher.utter_message(response="utter_faq_ask_question")
            return []
        _result, events = respond_from_faqs(dispatcher, domain, question, admit_none=True)
        return events

    @staticmethod
    def _answer_chosen(dispatcher: CollectingDispatcher, faq_id: str) -> list[EventType]:
        try:
            entry = knowledge_service().entry(faq_id)
        except Exception:
            logger.exception("knowledge base unavailable while answering a chosen FAQ")
            dispatcher.utter_message(response="utter_faq_unavailable")
            return []
        if entry is None:
            # A suggestion clicked after staff deleted that FAQ.
            dispatcher.utter_message(response="utter_faq_ask_question")
            return []
        send_faq_answer(dispatcher, entry)
        return [SlotSet("faq_answered_id", entry.faq_id)]


def _vote(tracker: Tracker) -> str | None:
    """The vote of a 👍/👎 button (its entity), or of the thumb typed after an answer."""
    vote = latest_entity(tracker, "faq_vote")
    if vote is None and latest_intent(tracker) == "faq_feedback":
        thumb = thumbs_vote(latest_text(tracker))
        vote = None if thumb is None else VOTE_UP if thumb else VOTE_DOWN
    return vote


class ActionRecordFaqFeedback(Action):
    """Store a 👍/👎 on an answer (the deflection metric), or queue a question no suggestion fit."""

    def name(self) -> str:
        return "action_record_faq_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        vote = _vote(tracker)
        question = tracker.get_slot("faq_question")
        if vote == VOTE_NONE_OF_THESE:
            if question:
                queue_unanswered(str(question))
            dispatcher.utter_message(response="utter_faq_none")
            return [SlotSet("faq_answered_id", None)]
        faq_id = latest_entity(tracker, "faq_id") or tracker.get_slot("faq_answered_id")
        if vote not in (VOTE_UP, VOTE_DOWN) or not faq_id:
            dispatcher.utter_message(response="utter_how_else_can_i_help")
            return []
        try:
            with store_session() as session:
                record_feedback(
                    session, str(faq_id), vote == VOTE_UP, sender_id=tracker.sender_id, query=question
                )
                session.commit()
        except NotFound:
            # A vote on a FAQ that staff deleted since it was answered: nothing left to rate.
            logger.info("feedback on a FAQ that no longer exists was not stored")
        except SQLAlchemyError:
            logger.exception("could not store FAQ feedback")
        dispatcher.utter_message(
            response="utter_faq_thanks_helpful" if vote == VOTE_UP else "utter_faq_sorry_unhelpful"
        )
        return [SlotSet("faq_answered_id", None)]
