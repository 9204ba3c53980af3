"""Customer 360 and customer updates by chat, for staff.

`action_query_customer` finds the customer the message names (in the asker's scope only) and
answers with the 360 view: a text response for every channel and a card for the web page. An
update is a form (`customer_change_form`) whose one slot the validate action fills with the
decision: the first message is read into a change (customer, field, value), the value is checked
by `crm_store.customer_updates.check_update`, the change is shown with 确认 / 取消, and any other
reply corrects it. Role and scope are checked by the services on every call.
"""

import json
from datetime import date
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
    customer_query,
    json_slot,
    latest_entity,
    latest_text,
    staff_actor,
    staff_decision,
    store_or_apology,
)
from crm_store import clock
from crm_store.access import Actor, visible_customer
from crm_store.customer360 import customer_view
from crm_store.customer_updates import AddPreference, check_update, update_customer
from crm_store.errors import CrmError, Forbidden, Invalid, NotFound
from crm_store.staff_formatting import customer_360_fields, field_name
from crm_store.staff_phrases import append_note, read_customer_change, wants_append

DRAFT: Final = "customer_change"
DECISION: Final = "customer_change_decision"


def _read_reply(session: Session, actor: Actor, tracker: Tracker, draft: dict[str, Any]) -> dict[str, Any]:
    """The change after the latest message: the customer, the field and the checked value."""
    draft = dict(draft)
    picked = latest_entity(tracker, "customer_id")
    if not draft.get("customer_id") or picked:
        choices = customer_choices(session, actor, tracker)
        if len(choices) == 1:
            draft.update(customer_id=choices[0]["id"], customer=choices[0]["label"], candidates=[])
        elif choices:
            draft["candidates"] = choices
    text = latest_text(tracker)
    field, raw = read_customer_change(text, field=draft.get("field"))
    if field and not picked:
        draft.update(field=field, value=None, append=field == "preferences" or wants_append(text))
        if raw:
            draft["value"] = shown_value(check_update(field, raw, today=clock.today()))
    return draft


def shown_value(value: Any) -> str:
    """A checked value as the confirmation shows it and the update takes it again."""
    if isinstance(value, AddPreference):
        return value.item
    return value.isoformat() if isinstance(value, date) else str(value or "")


class ValidateCustomerChangeForm(Action):
    """Reads each reply while a customer change waits: 确认, 取消, or a correction."""

    def name(self) -> str:
        return "validate_customer_change_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft = json_slot(tracker, DRAFT)
        decision = staff_decision(tracker) if draft else None
        if decision == STAFF_CANCELLED or (decision == STAFF_CONFIRMED and draft.get("value")):
            return [SlotSet(DECISION, decision)]
        try:
            with store_or_apology(dispatcher, "reading a customer change") as session:
                actor = staff_actor(tracker, session)
                if not actor.is_staff:
                    dispatcher.utter_message(response="utter_staff_only")
                    return [SlotSet(DECISION, STAFF_REFUSED)]
                draft = _read_reply(session, actor, tracker, draft)
        except StoreUnavailable:
            return [SlotSet(DECISION, STAFF_REFUSED)]
        except Invalid as error:
            dispatcher.utter_message(response=invalid_response(error))
            draft = {**draft, "field": error.field or draft.get("field"), "value": None}
        return [SlotSet(DRAFT, json.dumps(draft, ensure_ascii=False)), SlotSet(DECISION, None)]


INVALID_RESPONSES: Final = {
    "phone": "utter_customer_change_invalid_phone",
    "email": "utter_customer_change_invalid_email",
    "city": "utter_customer_change_invalid_city",
    "birthday": "utter_customer_change_invalid_birthday",
    "notes": "utter_customer_change_invalid_notes",
    "preferences": "utter_customer_change_invalid_preferences",
}
"""The polite message for a value the store refused, by field."""


def invalid_response(error: Invalid) -> str:
    """The field's own polite message for a refused value, or the general one."""
    return INVALID_RESPONSES.get(error.field or "", "utter_customer_change_invalid")


class ActionAskCustomerChangeDecision(Action):
    """Asks for the customer, the field or the value still missing, or shows the change."""

    def name(self) -> str:
        return "action_ask_customer_change_decision"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft = json_slot(tracker, DRAFT)
        candidates = draft.get("candidates") or []
        if not draft.get("customer_id") and candidates:
            buttons = [
                {"title": c["label"], "payload": "/inform" + json.dumps({"customer_id": c["id"]})}
                for c in candidates
            ]
            dispatcher.utter_message(response="utter_ask_customer_change_pick", buttons=buttons)
        elif not draft.get("customer_id"):
            dispatcher.utter_message(response="utter_ask_customer_change_who")
        elif not draft.get("field") or not draft.get("value"):
            dispatcher.utter_message(response="utter_ask_customer_change_what", customer=draft["customer"])
        else:
            field = field_name(draft["field"])
            response = (
                "utter_customer_change_confirm_append"
                if draft.get("append")
                else "utter_customer_change_confirm"
            )
            dispatcher.utter_message(
                response=response, customer=draft["customer"], field=field, value=draft["value"]
            )
        return []


class ActionFinishCustomerChange(Action):
    """Saves the confirmed change (the store checks role, scope and value again) or drops it."""

    def name(self) -> str:
        return "action_finish_customer_change"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        draft, reset = confirmed_draft(
            dispatcher,
            tracker,
            draft_slot=DRAFT,
            decision_slot=DECISION,
            cancelled="utter_customer_change_cancelled",
        )
        if draft is None:
            return reset
        try:
            with store_or_apology(dispatcher, "updating a customer") as session:
                actor = staff_actor(tracker, session)
                changes = _changes(session, actor, draft)
                update_customer(session, actor, draft["customer_id"], changes, today=clock.today())
                session.commit()
        except StoreUnavailable:
            return reset
        except CrmError as error:
            dispatcher.utter_message(response=_refusal(error))
            return reset
        field = field_name(draft["field"])
        dispatcher.utter_message(response="utter_customer_changed", customer=draft["customer"], field=field)
        return reset


def _changes(session: Session, actor: Actor, draft: dict[str, Any]) -> dict[str, str]:
    """The update to save: a note "加上" goes after the notes already there."""
    value = draft["value"]
    if draft["field"] == "notes" and draft.get("append"):
        old = visible_customer(session, actor, draft["customer_id"]).notes
        value = append_note(old, value)
    return {draft["field"]: value}


def _refusal(error: CrmError) -> str:
    if isinstance(error, Forbidden):
        return "utter_staff_only"
    if isinstance(error, Invalid):
        return invalid_response(error)
    return "utter_customer_not_found" if isinstance(error, NotFound) else "utter_staff_failed"


class ActionQueryCustomer(Action):
    """The 360 view of the one customer the message names; a choice when several match."""

    def name(self) -> str:
        return "action_query_customer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        query = customer_query(tracker)
        try:
            with store_or_apology(dispatcher, "looking up a customer") as session:
                actor = staff_actor(tracker, session)
                if not actor.is_staff:
                    dispatcher.utter_message(response="utter_staff_only")
                    return []
                choices = customer_choices(session, actor, tracker)
                if len(choices) == 1:
                    view = customer_view(session, actor, choices[0]["id"], today=clock.today())
                    session.commit()
        except StoreUnavailable:
            return []
        except NotFound:
            choices = []
        if not choices:
            dispatcher.utter_message(response="utter_customer_not_found", query=query[:30])
        elif len(choices) > 1:
            buttons = [
                {"title": c["label"], "payload": "/query_customer" + json.dumps({"customer_id": c["id"]})}
                for c in choices
            ]
            dispatcher.utter_message(response="utter_pick_customer", buttons=buttons)
        else:
            dispatcher.utter_message(
                response="utter_customer_360", **customer_360_fields(view, today=clock.today())
            )
            dispatcher.utter_message(json_message={"card": "customer_360", "data": view.to_json()})
        return []
