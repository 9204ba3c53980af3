"""Order status: validate the order number the customer gave, or the order picked from their list,
then answer from the store."""

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.support import StoreUnavailable, latest_text, store_or_apology, verified_customer
from crm_store import clock
from crm_store.customers import recent_orders, resolve_order_reference
from crm_store.formatting import cn_date_or_unknown, or_not_set
from crm_store.orders import get_order_status, parse_order_id

logger = logging.getLogger(__name__)

# The form's question would repeat what the customer just typed, so keep what they typed short.
_MAX_ECHO_CHARS = 30


class ValidateOrderStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_order_status_form"

    def validate_order_id(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        typed = str(slot_value).strip()[:_MAX_ECHO_CHARS]
        order_id = parse_order_id(typed)
        if order_id is None:
            dispatcher.utter_message(response="utter_order_id_malformed", order_id=typed)
            return {"order_id": None}
        try:
            with store_or_apology(dispatcher, "validating an order number") as session:
                found = get_order_status(session, order_id=order_id) is not None
        except StoreUnavailable:
            return {"order_id": None, "requested_slot": None}
        if not found:
            dispatcher.utter_message(response="utter_order_not_found", order_id=order_id)
            return {"order_id": None}
        return {"order_id": order_id}


def tell_order_status(dispatcher: CollectingDispatcher, order_id: str) -> None:
    """Answer where an order stands: status, carrier, tracking number, promised date, lateness."""
    today = clock.today()
    try:
        with store_or_apology(dispatcher, "looking up an order") as session:
            order = get_order_status(session, order_id=order_id, today=today)
    except StoreUnavailable:
        return
    if order is None:
        dispatcher.utter_message(response="utter_order_not_found", order_id=order_id)
        return
    shown = {"order_id": order.order_id, "status": order.status, "stage": order.stage}
    promised = cn_date_or_unknown(order.promised_date, today=today)
    if order.is_closed:
        tracking = {"carrier": or_not_set(order.carrier), "tracking_no": or_not_set(order.tracking_no)}
        dispatcher.utter_message(response="utter_order_status_closed", **shown, **tracking)
    elif order.carrier and order.tracking_no:
        tracking = {"carrier": order.carrier, "tracking_no": order.tracking_no}
        dispatcher.utter_message(
            response="utter_order_status_in_transit", **shown, **tracking, promised_date=promised
        )
    else:
        dispatcher.utter_message(response="utter_order_status_not_shipped", **shown, promised_date=promised)
    if order.is_late and order.promised_date is not None:
        days_late = (today - order.promised_date).days
        dispatcher.utter_message(response="utter_order_late_apology", days_late=days_late)


class ActionCheckOrderStatus(Action):
    def name(self) -> str:
        return "action_check_order_status"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[EventType]:
        order_id = tracker.get_slot("order_id")
        if order_id:
            tell_order_status(dispatcher, str(order_id))
        else:
            dispatcher.utter_message(response="utter_ask_order_status_form_order_id")
        # Cleared after every answer, so the next question about another order asks afresh.
        return [SlotSet("order_id", None)]


class ActionPickListedOrder(Action):
    """The order the customer picked from the list of their orders (by position or product): its status."""

    def name(self) -> str:
        return "action_pick_listed_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        customer_id = verified_customer(tracker)
        listed = tracker.get_slot("listed_orders") or []
        if customer_id is None or not listed:
            dispatcher.utter_message(response="utter_default")
            return []
        try:
            with store_or_apology(dispatcher, "resolving a listed order") as session:
                orders = [o for o in recent_orders(session, customer_id=customer_id) if o.order_id in listed]
        except StoreUnavailable:
            return []
        picked = resolve_order_reference(orders, latest_text(tracker))
        if picked is None:
            dispatcher.utter_message(response="utter_which_listed_order")
            return []
        tell_order_status(dispatcher, picked.order_id)
        return [SlotSet("order_id", None)]
