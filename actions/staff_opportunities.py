"""Opportunities by chat: "我的商机", create, move a stage, change the amount, close as lost.

One form, `opportunity_change_form`, with one slot that the validate action fills with the
decision. The first message is read into a draft (JSON in `opportunity_change`); the ask action
asks for what is missing or shows the change with 确认 / 取消; any other reply corrects the draft.
"我的商机" is answered at once and ends the form. Who may see and change which opportunity is
decided by `crm_store.opportunities`; this module only reads the staff's words.
"""

import json
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
from crm_store.access import Actor
from crm_store.errors import Conflict, CrmError, Forbidden, Invalid, NotFound
from crm_store.opportunities import (
    PIPELINE,
    OpportunityView,
    Pipeline,
    close_lost,
    create_opportunity,
    find_opportunities,
    move_stage,
    open_pipeline,
    set_amount,
)
from crm_store.staff_formatting import money, opportunity_lines
from crm_store.staff_phrases import (
    OPPORTUNITY_ID,
    new_opportunity_name,
    parse_amount,
    read_opportunity_change,
)

DRAFT: Final = "opportunity_change"
DECISION: Final = "opportunity_change_decision"
MAX_LISTED: Final = 10


def _pick_opportunity(session: Session, actor: Actor, tracker: Tracker, draft: dict[str, Any]) -> None:
    """Fill the draft's opportunity from a button, an id in the text, or what the text names."""
    text = latest_text(tracker)
    named = latest_entity(tracker, "opportunity_id") or (
        m.group(0).upper() if (m := OPPORTUNITY_ID.search(text)) else None
    )
    found = find_opportunities(session, actor, named or text)
    if len(found) == 1:
        view = found[0]
        draft.update(opportunity_id=view.opportunity_id, name=view.name, from_stage=view.stage)
        draft.update(old_amount=str(view.amount), candidates=[])
    elif found:
        draft["candidates"] = [
            {"id": v.opportunity_id, "label": f"{v.opportunity_id} {v.name}"} for v in found
        ]


def update_draft(session: Session, actor: Actor, tracker: Tracker, draft: dict[str, Any]) -> dict[str, Any]:
    """The draft after the latest message: a first request, a pick, a correction or a missing part."""
    text = latest_text(tracker)
    said = read_opportunity_change(text)
    if draft.get("op") == "lost" and not draft.get("reason") and said.get("op") != "lost":
        return {**draft, "reason": text}
    if draft.get("op") == "create":
        return _update_create(session, actor, tracker, draft, said)
    if said and said["op"] != draft.get("op", said["op"]) and draft.get("op"):
        draft = {
            k: v for k, v in draft.items() if k in ("opportunity_id", "name", "from_stage", "old_amount")
        }
    draft.update({k: v for k, v in said.items() if v is not None})
    if said.get("op") == "create":
        return _update_create(session, actor, tracker, draft, said)
    if not draft.get("opportunity_id") and draft.get("op") not in (None, "list"):
        _pick_opportunity(session, actor, tracker, draft)
    return draft


def _update_create(
    session: Session, actor: Actor, tracker: Tracker, draft: dict[str, Any], said: dict[str, Any]
) -> dict[str, Any]:
    text = latest_text(tracker)
    draft = {**draft, "op": "create"}
    if not draft.get("customer_id"):
        choices = customer_choices(session, actor, tracker)
        if len(choices) == 1:
            draft.update(customer_id=choices[0]["id"], customer=choices[0]["label"], candidates=[])
            draft["customer_name"] = choices[0]["name"]
        elif choices:
            draft["candidates"] = choices
    if said.get("amount") or parse_amount(text) is not None:
        draft["amount"] = said.get("amount") or str(parse_amount(text))
    name = new_opportunity_name(text, draft.get("customer_name"))
    if name and (not draft.get("name") or said.get("op") != "create"):
        draft["name"] = name
    return draft


def tell_pipeline(dispatcher: CollectingDispatcher, pipeline: Pipeline) -> None:
    """ "我的商机": one line per open opportunity, the totals, and the card for the web page."""
    if not pipeline.items:
        dispatcher.utter_message(response="utter_no_open_opportunities")
        return
    lines = opportunity_lines(pipeline.items[:MAX_LISTED])
    dispatcher.utter_message(
        response="utter_opportunity_pipeline",
        count=len(pipeline.items),
        total=money(pipeline.total_amount),
        weighted=money(pipeline.weighted_total),
        lines=lines,
    )
    dispatcher.utter_message(json_message={"card": "opportunities", "data": pipeline.to_json()})


class ValidateOpportunityChangeForm(Action):
    """Reads each reply while the form is open: 确认, 取消, or a correction of the draft."""

    def name(self) -> str:
        return "validate_opportunity_change_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft = json_slot(tracker, DRAFT)
        decision = staff_decision(tracker) if draft else None
        if decision == STAFF_CANCELLED or (decision == STAFF_CONFIRMED and _complete(draft)):
            return [SlotSet(DECISION, decision)]
        try:
            with store_or_apology(dispatcher, "reading an opportunity change") as session:
                actor = staff_actor(tracker, session)
                if not actor.is_staff:
                    dispatcher.utter_message(response="utter_staff_only")
                    return [SlotSet(DECISION, STAFF_REFUSED)]
                draft = update_draft(session, actor, tracker, draft)
                if draft.get("op") == "list":
                    tell_pipeline(dispatcher, open_pipeline(session, actor))
                    return [SlotSet(DECISION, STAFF_REFUSED)]
        except StoreUnavailable:
            return [SlotSet(DECISION, STAFF_REFUSED)]
        except Forbidden:
            dispatcher.utter_message(response="utter_staff_only")
            return [SlotSet(DECISION, STAFF_REFUSED)]
        return [SlotSet(DRAFT, json.dumps(draft, ensure_ascii=False)), SlotSet(DECISION, None)]


_NEEDED: Final = {
    "create": ("customer_id", "name", "amount"),
    "stage": ("opportunity_id", "to_stage"),
    "amount": ("opportunity_id", "amount"),
    "lost": ("opportunity_id", "reason"),
}


def _complete(draft: dict[str, Any]) -> bool:
    """True when the draft holds all a change of its kind needs."""
    needed = _NEEDED.get(str(draft.get("op")))
    return needed is not None and all(draft.get(key) for key in needed)


def _ask_missing(dispatcher: CollectingDispatcher, draft: dict[str, Any]) -> bool:
    """Ask for the first missing part of the draft; False when nothing is missing."""
    candidates = draft.get("candidates") or []
    payload_entity = "customer_id" if draft.get("op") == "create" else "opportunity_id"
    if draft.get("op") == "create" and not draft.get("customer_id") and not candidates:
        dispatcher.utter_message(response="utter_ask_opportunity_new_customer")
    elif not draft.get("op"):
        dispatcher.utter_message(response="utter_ask_opportunity_change_what")
    elif candidates and not draft.get(payload_entity):
        buttons = [
            {"title": c["label"], "payload": "/inform" + json.dumps({payload_entity: c["id"]})}
            for c in candidates
        ]
        dispatcher.utter_message(response="utter_ask_opportunity_change_pick", buttons=buttons)
    elif draft.get("op") != "create" and not draft.get("opportunity_id"):
        dispatcher.utter_message(response="utter_opportunity_not_found")
    elif draft.get("op") == "create" and not draft.get("name"):
        dispatcher.utter_message(response="utter_ask_opportunity_new_name")
    elif draft.get("op") == "lost" and not draft.get("reason"):
        dispatcher.utter_message(response="utter_ask_opportunity_lost_reason")
    elif (draft.get("op") in ("amount", "create")) and not draft.get("amount"):
        dispatcher.utter_message(response="utter_ask_opportunity_change_what")
    else:
        return False
    return True


_CONFIRM: Final = {
    "stage": "utter_opportunity_confirm_stage",
    "amount": "utter_opportunity_confirm_amount",
    "lost": "utter_opportunity_confirm_lost",
    "create": "utter_opportunity_confirm_create",
}


class ActionAskOpportunityChangeDecision(Action):
    """Asks for what the change still lacks, or shows it with 确认 / 取消."""

    def name(self) -> str:
        return "action_ask_opportunity_change_decision"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft = json_slot(tracker, DRAFT)
        if _ask_missing(dispatcher, draft):
            return []
        dispatcher.utter_message(
            response=_CONFIRM[str(draft["op"])],
            name=draft.get("name"),
            customer=draft.get("customer"),
            from_stage=draft.get("from_stage"),
            to_stage=draft.get("to_stage"),
            stage=PIPELINE[0],
            reason=draft.get("reason"),
            amount=money(draft.get("amount")),
            old_amount=money(draft.get("old_amount")),
        )
        return []


def apply_change(session: Session, actor: Actor, draft: dict[str, Any]) -> tuple[str, OpportunityView]:
    """Save the confirmed change; the response to say and the opportunity as it now is."""
    op, opportunity_id = draft["op"], str(draft.get("opportunity_id"))
    if op == "create":
        view = create_opportunity(
            session, actor, customer_id=draft["customer_id"], name=draft["name"], amount=draft["amount"]
        )
        return "utter_opportunity_created", view
    if op == "lost":
        view = close_lost(session, actor, opportunity_id, draft["reason"])
    elif op == "amount":
        view = set_amount(session, actor, opportunity_id, draft["amount"])
    else:
        view = move_stage(session, actor, opportunity_id, draft["to_stage"])
    return "utter_opportunity_saved", view


class ActionFinishOpportunityChange(Action):
    """Saves the confirmed change (the store checks role and scope again) or says it was dropped."""

    def name(self) -> str:
        return "action_finish_opportunity_change"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft, reset = confirmed_draft(
            dispatcher,
            tracker,
            draft_slot=DRAFT,
            decision_slot=DECISION,
            cancelled="utter_opportunity_change_cancelled",
        )
        if draft is None:
            return reset
        try:
            with store_or_apology(dispatcher, "saving an opportunity change") as session:
                response, view = apply_change(session, staff_actor(tracker, session), draft)
                session.commit()
        except StoreUnavailable:
            return reset
        except CrmError as error:
            dispatcher.utter_message(response=_refusal(error))
            return reset
        dispatcher.utter_message(
            response=response,
            opportunity_id=view.opportunity_id,
            name=view.name,
            stage=view.stage,
            amount=money(view.amount),
        )
        dispatcher.utter_message(json_message={"card": "opportunity", "data": view.to_json()})
        return reset


def _refusal(error: CrmError) -> str:
    if isinstance(error, Forbidden):
        return "utter_staff_only"
    if isinstance(error, NotFound):
        return "utter_opportunity_not_found"
    if isinstance(error, Conflict | Invalid):
        return "utter_opportunity_change_refused"
    return "utter_staff_failed"
