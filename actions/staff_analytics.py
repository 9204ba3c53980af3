"""Managers' questions about the figures, by chat: "上个月华东区销售额最高的五个客户".

`knowledge.manager_query.asking.ask` parses the message, runs it in the asker's scope and words
the answer; this action only passes the previous question (slot `manager_query_spec`, so that
"那上上个月呢" and "换成按产品" keep the context), shows a clarifying question's options as buttons
and links a result to its chart on the dashboard (`/dashboard?spec=…`, the card `manager_answer`).
"""

import base64
import json
from typing import Final

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.support import StoreUnavailable, json_slot, latest_text, staff_actor, store_or_apology
from crm_store import clock
from crm_store.analytics.answers import refusal_text
from crm_store.analytics.spec import QuerySpec
from crm_store.errors import CrmError
from knowledge.manager_query.asking import ask

SPEC_SLOT: Final = "manager_query_spec"


def dashboard_path(spec: QuerySpec) -> str:
    """The dashboard page drawing this spec's chart (the spec as base64url JSON, no padding)."""
    encoded = base64.urlsafe_b64encode(json.dumps(spec.to_json(), ensure_ascii=False).encode())
    return "/dashboard?spec=" + encoded.decode().rstrip("=")


def _previous(tracker: Tracker) -> QuerySpec | None:
    data = json_slot(tracker, SPEC_SLOT)
    try:
        return QuerySpec.from_json(data) if data else None
    except (CrmError, KeyError, TypeError, ValueError):
        return None


class ActionAnswerManagerQuery(Action):
    """Answers a question about sales, customers, complaints or the pipeline, in the asker's scope."""

    def name(self) -> str:
        return "action_answer_manager_query"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            with store_or_apology(dispatcher, "answering a manager question") as session:
                actor = staff_actor(tracker, session)
                if not actor.is_staff:
                    dispatcher.utter_message(response="utter_staff_only")
                    return []
                answer = ask(
                    session, actor, latest_text(tracker), today=clock.today(), previous=_previous(tracker)
                )
        except StoreUnavailable:
            return []
        except CrmError as refused:
            dispatcher.utter_message(response="utter_manager_answer", answer=refusal_text(refused))
            return []
        if answer.kind == "result" and answer.spec is not None:
            dispatcher.utter_message(response="utter_manager_answer", answer=answer.text)
            # The web page turns the card into a link to the chart; other channels only get the text.
            card = {"card": "manager_answer", "data": {"dashboard": dashboard_path(answer.spec)}}
            dispatcher.utter_message(json_message=card)
            return [SlotSet(SPEC_SLOT, json.dumps(answer.spec.to_json(), ensure_ascii=False))]
        buttons = [{"title": option, "payload": option} for option in answer.options]
        response = "utter_manager_clarify" if answer.kind == "clarify" else "utter_manager_unsupported"
        dispatcher.utter_message(response=response, answer=answer.text, buttons=buttons)
        if answer.kind == "clarify" and answer.spec is not None:
            return [SlotSet(SPEC_SLOT, json.dumps(answer.spec.to_json(), ensure_ascii=False))]
        return []
