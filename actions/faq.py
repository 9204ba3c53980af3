"""FAQ answers: a thin adapter from a question in the chat to the knowledge base.

The knowledge base decides (knowledge.decision): an answer is sent with 👍/👎 buttons, a
"suggest" offers the three likeliest FAQs as buttons (plus "都不是"), and "none" says so,
queues the question for staff (crm_store.faqs.record_unanswered) and offers a person.
"""

import json
import logging
import os
import threading
from functools import cache

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions import store
from actions.turns import latest_entity, latest_intent, latest_text
from crm_store.faqs import FaqError, record_feedback, record_unanswered
from knowledge.encoder import EncoderUnavailable
from knowledge.service import SUGGESTIONS, KnowledgeService
from knowledge.types import FaqEntry, SearchResult

logger = logging.getLogger(__name__)

VOTE_UP, VOTE_DOWN, VOTE_NONE_OF_THESE = "up", "down", "none_of_these"
NONE_OF_THESE_TITLE = "都不是"


_loading = threading.Lock()


@cache
def _loaded_service() -> KnowledgeService:
    return KnowledgeService(store._session_factory())


def knowledge_service() -> KnowledgeService:
    """The action server's knowledge base, loaded once: on first use, or at start-up (below).

    A question that arrives while the start-up load runs waits for it instead of loading a
    second copy of the model.
    """
    with _loading:
        return _loaded_service()


def _warm_up() -> None:
    try:
        knowledge_service()
    except Exception:  # the first question will report it to the customer politely
        logger.exception("knowledge base could not be loaded at start-up")


# `crmbot up` asks for the model to be loaded while the server starts, so that the first
# customer question does not wait for it.
if os.environ.get("KNOWLEDGE_WARM_UP") == "1":
    threading.Thread(target=_warm_up, name="knowledge-warm-up", daemon=True).start()


def _feedback_payload(vote: str, faq_id: str | None = None) -> str:
    entities = {"faq_vote": vote, **({"faq_id": faq_id} if faq_id else {})}
    return "/faq_feedback" + json.dumps(entities, ensure_ascii=False)


def _send_answer(dispatcher: CollectingDispatcher, entry: FaqEntry) -> None:
    dispatcher.utter_message(text=entry.answer)
    dispatcher.utter_message(
        response="utter_faq_was_it_helpful",
        buttons=[
            {"title": "👍 有帮助", "payload": _feedback_payload(VOTE_UP, entry.faq_id)},
            {"title": "👎 没帮助", "payload": _feedback_payload(VOTE_DOWN, entry.faq_id)},
        ],
    )


def _queue_unanswered(question: str) -> None:
    try:
        with store.store_session() as session:
            record_unanswered(session, question)
            session.commit()
    except SQLAlchemyError:
        # The customer still gets the honest "I don't know"; only the staff queue misses it.
        logger.exception("could not queue an unanswered question")


def respond_from_faqs(
    dispatcher: CollectingDispatcher, question: str, *, admit_none: bool
) -> tuple[SearchResult | None, list[EventType]]:
    """Search `question`; answer or suggest. On "none", queue it and, if `admit_none`, say so.

    Returns the result (None when the knowledge base is down, which has been told to the
    customer) and the slot events to apply.
    """
    try:
        result = knowledge_service().search(question, top_k=SUGGESTIONS)
    except EncoderUnavailable:
        logger.error("knowledge base unavailable: the encoder model is missing")
        dispatcher.utter_message(response="utter_faq_unavailable")
        return None, []
    except Exception:
        logger.exception("FAQ search failed")
        dispatcher.utter_message(response="utter_faq_unavailable")
        return None, []

    events: list[EventType] = [SlotSet("faq_question", question)]
    if result.decision == "answer":
        best = result.hits[0]
        _send_answer(dispatcher, FaqEntry(best.faq_id, best.question, best.answer))
        return result, [*events, SlotSet("faq_answered_id", best.faq_id)]
    if result.decision == "suggest":
        buttons = [
            {"title": hit.question, "payload": "/ask_faq" + json.dumps({"faq_id": hit.faq_id})}
            for hit in result.hits[:SUGGESTIONS]
        ]
        buttons.append({"title": NONE_OF_THESE_TITLE, "payload": _feedback_payload(VOTE_NONE_OF_THESE)})
        dispatcher.utter_message(response="utter_faq_suggest", buttons=buttons)
        return result, [*events, SlotSet("faq_answered_id", None)]
    _queue_unanswered(question)
    if admit_none:
        dispatcher.utter_message(response="utter_faq_none")
    return result, [*events, SlotSet("faq_answered_id", None)]


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
            # The "咨询常见问题" button or a bare intent: no question to search yet.
            dispatcher.utter_message(response="utter_faq_ask_question")
            return []
        _result, events = respond_from_faqs(dispatcher, question, admit_none=True)
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
        _send_answer(dispatcher, entry)
        return [SlotSet("faq_answered_id", entry.faq_id)]


class ActionRecordFaqFeedback(Action):
    """Store a 👍/👎 on an answer (the deflection metric), or queue a question no suggestion fit."""

    def name(self) -> str:
        return "action_record_faq_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        vote = latest_entity(tracker, "faq_vote")
        if vote is None and latest_intent(tracker) == "faq_feedback":
            vote = (
                VOTE_UP
                if "👍" in latest_text(tracker)
                else VOTE_DOWN
                if "👎" in latest_text(tracker)
                else None
            )
        question = tracker.get_slot("faq_question")
        if vote == VOTE_NONE_OF_THESE:
            if question:
                _queue_unanswered(str(question))
            dispatcher.utter_message(response="utter_faq_none")
            return [SlotSet("faq_answered_id", None)]
        faq_id = latest_entity(tracker, "faq_id") or tracker.get_slot("faq_answered_id")
        if vote not in (VOTE_UP, VOTE_DOWN) or not faq_id:
            dispatcher.utter_message(response="utter_how_else_can_i_help")
            return []
        try:
            with store.store_session() as session:
                record_feedback(
                    session, str(faq_id), vote == VOTE_UP, sender_id=tracker.sender_id, query=question
                )
                session.commit()
        except FaqError:
            # A vote on a FAQ that staff deleted since it was answered: nothing left to rate.
            logger.info("feedback on a FAQ that no longer exists was not stored")
        except SQLAlchemyError:
            logger.exception("could not store FAQ feedback")
        dispatcher.utter_message(
            response="utter_faq_thanks_helpful" if vote == VOTE_UP else "utter_faq_sorry_unhelpful"
        )
        return [SlotSet("faq_answered_id", None)]
