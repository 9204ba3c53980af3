"""What the action modules share, in one place: no action module imports another.

- the store: one session factory per process (`store_session`), and `store_or_apology`, a
  session whose failure is answered with `utter_service_unavailable`;
- the knowledge base: one `KnowledgeHolder` per process, created on first use, never at import
  (`knowledge_service`; the server's start warms it up, see `actions/__main__.py`);
- reading the latest turn: text, intent, entities, the form's requested slot, the verified customer;
- buttons from the domain: `domain_buttons` reads the buttons of a response that only holds them
  (a response's own buttons come first when it is uttered, so buttons that must follow an
  action's own, or be picked from, live in such a response);
- the steps of several flows: opening a hand-off (`hand_off`), answering from the FAQs
  (`respond_from_faqs`, `send_faq_answer`), listing a customer's open tickets (`tell_open_tickets`).
- the staff side: who is asking (`staff_actor`, from the message metadata the API gateway
  stamps, checked against the store), what a reply to a confirmation card decides
  (`staff_decision`), drafts kept in slots as JSON (`json_slot`), and the customers a message
  names (`customer_choices`, in the employee's scope only).

Every sentence and button title the customer sees is a domain response (bot/domain/*.yml); the
rules behind the answers are services of `crm_store` and `knowledge`.
"""

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, STAFF_ROLES, Actor, actor_for
from crm_store.complaints import open_tickets
from crm_store.customer360 import find_customers
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import CrmError, NotFound
from crm_store.faqs import record_unanswered
from crm_store.formatting import cn_time, ticket_lines
from crm_store.handoff import open_handoff
from crm_store.phrases import wants_to_stop
from crm_store.staff_formatting import customer_label
from crm_store.staff_phrases import company_and_person
from knowledge.errors import KnowledgeError
from knowledge.holder import KnowledgeHolder
from knowledge.service import SUGGESTIONS, KnowledgeService
from knowledge.types import FaqEntry, SearchResult

logger = logging.getLogger(__name__)

# --- the store -----------------------------------------------------------------------------------


@cache
def _session_factory() -> sessionmaker[Session]:
    # Created on first use, not at import: the action server must start even while the
    # database is still coming up, and each turn reports a store failure on its own.
    return make_session_factory(create_engine_for())


@contextmanager
def store_session() -> Iterator[Session]:
    """A short-lived session for one dialogue turn."""
    with _session_factory()() as session:
        yield session


class StoreUnavailable(Exception):
    """The store failed during a turn; the customer has been told (`utter_service_unavailable`)."""


@contextmanager
def store_or_apology(dispatcher: CollectingDispatcher, doing: str) -> Iterator[Session]:
    """A session for one turn; a store failure in the block is apologised for, then `StoreUnavailable`.

    The apology is `utter_service_unavailable`. `doing` names the work for the log ("listing
    orders"); the log never holds the customer's data.
    """
    try:
        with store_session() as session:
            yield session
    except SQLAlchemyError as error:
        logger.exception("the CRM store failed while %s", doing)
        dispatcher.utter_message(response="utter_service_unavailable")
        raise StoreUnavailable(doing) from error


# --- the knowledge base ---------------------------------------------------------------------------


@cache
def knowledge_holder() -> KnowledgeHolder:
    """The process's one knowledge holder, created on first use (nothing is loaded until asked)."""
    return KnowledgeHolder(_session_factory())


def knowledge_service() -> KnowledgeService:
    """The loaded knowledge service; a question asked during the start-up load waits for it.

    Raises:
        knowledge.errors.KnowledgeUnavailable: The load failed.
    """
    return knowledge_holder().require()


# --- the latest turn ------------------------------------------------------------------------------


def latest_text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "").strip()


def latest_intent(tracker: Tracker) -> str | None:
    intent = tracker.latest_message.get("intent") or {}
    return str(intent.get("name")) if intent.get("name") else None


def latest_entity(tracker: Tracker, entity: str) -> str | None:
    """The last value of `entity` in the latest message (the regex extractor and DIET may both find it)."""
    values = [e.get("value") for e in tracker.latest_message.get("entities", []) if e.get("entity") == entity]
    return str(values[-1]) if values and values[-1] is not None else None


def is_requested(tracker: Tracker, slot: str) -> bool:
    """True when the active form has just asked for `slot`."""
    return bool(tracker.get_slot("requested_slot") == slot)


def verified_customer(tracker: Tracker) -> str | None:
    """The customer this conversation proved to be (verification lasts for the session), or None."""
    value = tracker.get_slot("verified_customer_id")
    return str(value) if value else None


# --- buttons from the domain ----------------------------------------------------------------------

# Rasa's own placeholder syntax (rasa.core.nlg.interpolator): "{name}", with "{{" and "}}" for braces.
_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")


def _fill(template: str, values: Mapping[str, Any]) -> str:
    try:
        return _PLACEHOLDER.sub(r"{0[\1]}", template).format(values)
    except (KeyError, IndexError, ValueError):
        return template


def domain_buttons(domain: DomainDict, response: str, **values: Any) -> list[dict[str, str]]:
    """The buttons of `response` in the domain, its placeholders filled from `values` as Rasa would."""
    variations = (domain.get("responses") or {}).get(response) or [{}]
    return [
        {"title": _fill(str(button["title"]), values), "payload": _fill(str(button["payload"]), values)}
        for button in variations[0].get("buttons") or []
    ]


# --- hand-off to a person -------------------------------------------------------------------------


def transcript_of(tracker: Tracker) -> list[dict[str, Any]]:
    """What the customer and the bot said so far, for the person who takes over.

    Each line carries the real instant it was said; the hand-off service places it on the CRM clock.
    """
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
    """Open a hand-off case for the conversation and tell the customer when a person will answer.

    While the case is open the API keeps the conversation away from Rasa, so the bot is paused
    without Rasa's help.
    """
    try:
        with store_session() as session:
            opening = open_handoff(
                session,
                conversation=tracker.sender_id,
                reason=reason,
                customer_id=verified_customer(tracker),
                ticket_id=ticket_id,
                transcript=transcript_of(tracker),
            )
            session.commit()
    except (SQLAlchemyError, CrmError):
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


# --- answers from the FAQs ------------------------------------------------------------------------


def send_faq_answer(dispatcher: CollectingDispatcher, entry: FaqEntry) -> None:
    """The FAQ's answer (the FAQ's own text, data of the store), then the 👍/👎 question."""
    dispatcher.utter_message(text=entry.answer)
    dispatcher.utter_message(response="utter_faq_was_it_helpful", faq_id=entry.faq_id)


def queue_unanswered(question: str) -> None:
    """Queue a question no FAQ answered for staff; a store failure only loses the queue entry."""
    try:
        with store_session() as session:
            record_unanswered(session, question)
            session.commit()
    except SQLAlchemyError:
        # The customer still gets the honest "I don't know"; only the staff queue misses it.
        logger.exception("could not queue an unanswered question")


def _search(dispatcher: CollectingDispatcher, question: str) -> SearchResult | None:
    try:
        return knowledge_service().search(question, top_k=SUGGESTIONS)
    except KnowledgeError as error:
        logger.error("knowledge base unavailable: %s", error)
    except Exception:
        logger.exception("FAQ search failed")
    dispatcher.utter_message(response="utter_faq_unavailable")
    return None


def respond_from_faqs(
    dispatcher: CollectingDispatcher, domain: DomainDict, question: str, *, admit_none: bool
) -> tuple[SearchResult | None, list[EventType]]:
    """Search `question`; answer or suggest. On "none", queue it and, if `admit_none`, say so.

    Returns the result (None when the knowledge base is down, which has been told to the
    customer) and the slot events to apply.
    """
    result = _search(dispatcher, question)
    if result is None:
        return None, []
    events: list[EventType] = [SlotSet("faq_question", question)]
    if result.decision == "answer":
        best = result.hits[0]
        send_faq_answer(dispatcher, FaqEntry(best.faq_id, best.question, best.answer))
        return result, [*events, SlotSet("faq_answered_id", best.faq_id)]
    if result.decision == "suggest":
        # Each suggestion's title is the FAQ's own question, data of the store.
        buttons = [
            {"title": hit.question, "payload": "/ask_faq" + json.dumps({"faq_id": hit.faq_id})}
            for hit in result.hits[:SUGGESTIONS]
        ]
        buttons += domain_buttons(domain, "utter_faq_none_of_these")
        dispatcher.utter_message(response="utter_faq_suggest", buttons=buttons)
        return result, [*events, SlotSet("faq_answered_id", None)]
    queue_unanswered(question)
    if admit_none:
        dispatcher.utter_message(response="utter_faq_none")
    return result, [*events, SlotSet("faq_answered_id", None)]


# --- complaints -----------------------------------------------------------------------------------


def tell_open_tickets(dispatcher: CollectingDispatcher, customer_id: str) -> list[EventType]:
    """List the customer's tickets still open (after verification, or when asked for their status)."""
    try:
        with store_or_apology(dispatcher, "listing open tickets") as session:
            tickets = open_tickets(session, customer_id=customer_id)
    except StoreUnavailable:
        return []
    if not tickets:
        dispatcher.utter_message(response="utter_no_open_tickets")
    else:
        dispatcher.utter_message(response="utter_open_tickets", ticket_lines=ticket_lines(tickets))
    return []


# --- the staff side -------------------------------------------------------------------------------

STAFF_CONFIRMED = "confirmed"
STAFF_CANCELLED = "cancelled"
STAFF_REFUSED = "refused"
"""The values of a staff form's decision slot: save, drop, or nothing to do (already answered)."""

# A reply longer than this is a correction even when it starts with "对" or "不是".
_MAX_BARE_ANSWER_CHARS = 6


def staff_actor(tracker: Tracker, session: Session) -> Actor:
    """The employee behind the latest message, with the role and region the store holds today.

    The API gateway stamps `principal_id` and `role` into the message metadata from the signed
    token (never from the request body); anything else, or an employee the store does not know,
    is a customer. The services check the actor's role and scope again on every call.
    """
    metadata = tracker.latest_message.get("metadata") or {}
    principal_id = metadata.get("principal_id")
    if not isinstance(principal_id, str) or metadata.get("role") not in STAFF_ROLES:
        return CUSTOMER
    try:
        return actor_for(session, principal_id)
    except NotFound:
        return CUSTOMER


def staff_decision(tracker: Tracker) -> str | None:
    """What a reply to a confirmation card decides: confirmed, cancelled, or None (a correction).

    Only a short yes or no (or the card's buttons) decides; "不是周三，是周四" is classified as a
    "no" but is a correction of the draft.
    """
    text = latest_text(tracker)
    intent = latest_intent(tracker)
    bare = text.startswith("/") or len(text) <= _MAX_BARE_ANSWER_CHARS
    if wants_to_stop(text) or (intent == "deny" and bare):
        return STAFF_CANCELLED
    if intent == "affirm" and bare:
        return STAFF_CONFIRMED
    return None


def json_slot(tracker: Tracker, slot: str) -> dict[str, Any]:
    """A draft kept in a text slot as JSON (an empty dict when there is none)."""
    value = tracker.get_slot(slot)
    try:
        loaded = json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def confirmed_draft(
    dispatcher: CollectingDispatcher, tracker: Tracker, *, draft_slot: str, decision_slot: str, cancelled: str
) -> tuple[dict[str, Any] | None, list[EventType]]:
    """The draft staff confirmed (None otherwise), and the events that clear it whatever happens next.

    A finish-draft action's first step: on 取消 the `cancelled` response is said here; any other
    decision (a refusal, none) ends the draft silently.
    """
    decision = tracker.get_slot(decision_slot)
    reset: list[EventType] = [SlotSet(draft_slot, None), SlotSet(decision_slot, None)]
    if decision == STAFF_CANCELLED:
        dispatcher.utter_message(response=cancelled)
    return (json_slot(tracker, draft_slot) if decision == STAFF_CONFIRMED else None), reset


def customer_query(tracker: Tracker) -> str:
    """How the latest message names a customer: a picked id, the names NLU found, a phone, or the text."""
    picked = latest_entity(tracker, "customer_id")
    if picked:
        return picked
    names = [
        str(e["value"])
        for e in tracker.latest_message.get("entities", [])
        if e.get("entity") == "customer_name"
    ]
    if names:
        return company_and_person(names[-2:])
    return latest_entity(tracker, "phone") or latest_text(tracker)


def customer_choices(session: Session, actor: Actor, tracker: Tracker) -> list[dict[str, str]]:
    """The customers in `actor`'s scope that the latest message names, best first: [{"id", "name", "label"}].

    Tried in turn until one finds someone: the query of `customer_query`, each name NLU found on
    its own, the whole text (the finder drops "查一下 … 的档案" itself).
    """
    names = [
        str(e["value"])
        for e in tracker.latest_message.get("entities", [])
        if e.get("entity") == "customer_name"
    ]
    for query in dict.fromkeys([customer_query(tracker), *reversed(names), latest_text(tracker)]):
        matches = find_customers(session, actor, query)
        if matches:
            return [{"id": m.customer_id, "name": m.name, "label": customer_label(m)} for m in matches]
    return []
