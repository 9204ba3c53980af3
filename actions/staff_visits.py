"""Log a visit from one message: read it, ask only for what is missing, confirm, then save.

`visit_form` has one slot, `visit_decision`, that the validate action fills: the first message is
read by `knowledge.visits` (the customer is matched only within the employee's scope) into a draft
kept as JSON in `visit_draft`; the ask action asks for the customer (buttons when several match)
or the summary when missing, else shows the draft with 确认 / 取消; any other reply while the draft
waits is a correction ("不是周三，是周四"), read by `VisitParser.revise`. 确认 saves one interaction
and, with a next date, one follow-up task (`crm_store.visits.save_visit`).
"""

import json
from dataclasses import replace
from typing import Any, Final

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.support import (
    STAFF_CANCELLED,
    STAFF_CONFIRMED,
    STAFF_REFUSED,
    StoreUnavailable,
    confirmed_draft,
    customer_choices,
    json_slot,
    latest_entity,
    latest_text,
    staff_actor,
    staff_decision,
    store_or_apology,
)
from crm_store import clock
from crm_store.access import Actor
from crm_store.errors import CrmError, Forbidden, NotFound
from crm_store.staff_formatting import UNKNOWN_KIND, candidate_title, visit_fields
from crm_store.visits import VisitDraft, save_visit
from knowledge.visits import VisitExtraction, parse_visit, parser_for

DRAFT: Final = "visit_draft"
DECISION: Final = "visit_decision"


def _extraction(draft: dict[str, Any]) -> VisitExtraction | None:
    data = draft.get("extraction")
    return VisitExtraction.from_json(data) if data else None


def _draft(extraction: VisitExtraction, customer: str | None) -> str:
    return json.dumps({"extraction": extraction.to_json(), "customer": customer}, ensure_ascii=False)


def read_reply(
    session: Session, actor: Actor, tracker: Tracker, draft: dict[str, Any]
) -> tuple[VisitExtraction, str | None]:
    """The draft after the latest message: a first sentence, a picked customer, a summary, a correction."""
    today, text = clock.today(), latest_text(tracker)
    extraction, customer = _extraction(draft), draft.get("customer")
    if latest_entity(tracker, "customer_id"):
        # A button (a candidate, or 记录跟进 of a reminder): the customer only, checked in scope.
        chosen = customer_choices(session, actor, tracker)
        base = extraction or replace(parse_visit(session, actor, "", today=today), summary="")
        if len(chosen) == 1:
            name = chosen[0]["name"]
            return replace(base, customer_id=chosen[0]["id"], customer_name=name, candidates=()), name
        return base, customer
    if extraction is None:
        parsed = parse_visit(session, actor, text, today=today)
        return parsed, parsed.customer_name
    if not extraction.summary:
        said = parse_visit(session, actor, text, today=today)
        merged = replace(
            extraction,
            summary=said.summary or text,
            kind=extraction.kind or said.kind,
            next_step=extraction.next_step or said.next_step,
            next_date=extraction.next_date or said.next_date,
        )
        return merged, customer
    revised = parser_for(session, actor).revise(extraction, text, today=today)
    return revised, revised.customer_name or customer


class ValidateVisitForm(Action):
    """Reads each reply while a visit draft waits: 确认, 取消, or a correction of the draft."""

    def name(self) -> str:
        return "validate_visit_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft = json_slot(tracker, DRAFT)
        extraction = _extraction(draft)
        decision = staff_decision(tracker) if extraction else None
        if decision == STAFF_CANCELLED or (decision == STAFF_CONFIRMED and complete(extraction)):
            return [SlotSet(DECISION, decision)]
        try:
            with store_or_apology(dispatcher, "reading a visit note") as session:
                actor = staff_actor(tracker, session)
                if not actor.is_staff:
                    dispatcher.utter_message(response="utter_staff_only")
                    return [SlotSet(DECISION, STAFF_REFUSED)]
                revised, customer = read_reply(session, actor, tracker, draft)
        except StoreUnavailable:
            return [SlotSet(DECISION, STAFF_REFUSED)]
        if extraction is not None and revised == extraction and not latest_entity(tracker, "customer_id"):
            dispatcher.utter_message(response="utter_visit_correction_unclear")
        return [SlotSet(DRAFT, _draft(revised, customer)), SlotSet(DECISION, None)]


def complete(extraction: VisitExtraction | None) -> bool:
    """A draft can be saved once it has a customer and a summary (nothing else is mandatory)."""
    return extraction is not None and bool(extraction.customer_id and extraction.summary)


def card_fields(extraction: VisitExtraction, customer: str | None) -> dict[str, Any]:
    """The values of the confirmation and of the saved message, dates in Chinese."""
    return visit_fields(extraction.to_json(), customer, today=clock.today())


class ActionAskVisitDecision(Action):
    """Asks for the customer or the summary when missing, else shows the draft with 确认 / 取消."""

    def name(self) -> str:
        return "action_ask_visit_decision"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft = json_slot(tracker, DRAFT)
        extraction = _extraction(draft)
        if extraction is None or (not extraction.customer_id and not extraction.candidates):
            dispatcher.utter_message(response="utter_ask_visit_customer")
        elif not extraction.customer_id:
            buttons = [
                {
                    "title": candidate_title(c.name, c.company),
                    "payload": "/inform" + json.dumps({"customer_id": c.customer_id}),
                }
                for c in extraction.candidates
            ]
            dispatcher.utter_message(response="utter_ask_visit_pick_customer", buttons=buttons)
        elif not extraction.summary:
            dispatcher.utter_message(response="utter_ask_visit_summary")
        else:
            dispatcher.utter_message(
                response="utter_visit_draft", **card_fields(extraction, draft.get("customer"))
            )
            dispatcher.utter_message(json_message={"card": "visit_draft", "data": extraction.to_json()})
        return []


class ActionFinishVisit(Action):
    """Saves the confirmed visit (the store checks role and scope again) or says it was dropped."""

    def name(self) -> str:
        return "action_finish_visit"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft, reset = confirmed_draft(
            dispatcher, tracker, draft_slot=DRAFT, decision_slot=DECISION, cancelled="utter_visit_cancelled"
        )
        extraction = _extraction(draft) if draft is not None else None
        if draft is None or extraction is None or extraction.customer_id is None:
            return reset
        try:
            with store_or_apology(dispatcher, "saving a visit") as session:
                saved = save_visit(session, staff_actor(tracker, session), visit_draft(extraction))
                session.commit()
        except StoreUnavailable:
            return reset
        except CrmError as error:
            refusal = "utter_staff_only" if isinstance(error, Forbidden) else "utter_staff_failed"
            fields = {"query": draft.get("customer") or ""}
            dispatcher.utter_message(
                response="utter_customer_not_found" if isinstance(error, NotFound) else refusal, **fields
            )
            return reset
        response = "utter_visit_saved_with_task" if saved.task_id is not None else "utter_visit_saved"
        dispatcher.utter_message(response=response, **card_fields(extraction, draft.get("customer")))
        return reset


def visit_draft(extraction: VisitExtraction) -> VisitDraft:
    """What the store saves from a confirmed extraction."""
    return VisitDraft(
        customer_id=str(extraction.customer_id),
        kind=extraction.kind or UNKNOWN_KIND,
        occurred_at=extraction.occurred_at,
        summary=extraction.summary,
        next_step=extraction.next_step,
        next_date=extraction.next_date,
    )
