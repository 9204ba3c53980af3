"""Order status: validate the order number the customer gave, then answer from the store."""

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.formatting import cn_date
from actions.store import store_session
from crm_store import clock
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
            with store_session() as session:
                found = get_order_status(session, order_id=order_id) is not None
        except SQLAlchemyError:
            logger.exception("order lookup failed while validating the order number")
            dispatcher.utter_message(response="utter_service_unavailable")
            return {"order_id": None, "requested_slot": None}
        if not found:
            dispatcher.utter_message(response="utter_order_not_found", order_id=order_id)
            return {"order_id": None}
        return {"order_id": order_id}


def tell_order_status(dispatcher: CollectingDispatcher, order_id: str) -> None:
    """Answer where an order stands: status, carrier, tracking number, promised date, lateness."""
    today = clock.today()
    try:
        with store_session() as session:
            order = get_order_status(session, order_id=order_id, today=today)
    except SQLAlchemyError:
        logger.exception("order lookup failed")
        dispatcher.utter_message(response="utter_service_unavailable")
        return
    if order is None:
        dispatcher.utter_message(response="utter_order_not_found", order_id=order_id)
        return

    promised = cn_date(order.promised_date, today=today) if order.promised_date else "暂未确定"
    if order.is_closed:
        dispatcher.utter_message(
            response="utter_order_status_closed",
            order_id=order.order_id,
            status=order.status,
            stage=order.stage,
            carrier=order.carrier or "无",
            tracking_no=order.tracking_no or "无",
        )
    elif order.carrier and order.tracking_no:
        dispatcher.utter_message(
            response="utter_order_status_in_transit",
            order_id=order.order_id,
            status=order.status,
            stage=order.stage,
            carrier=order.carrier,
            tracking_no=order.tracking_no,
            promised_date=promised,
        )
    else:
        dispatcher.utter_message(
            response="utter_order_status_not_shipped",
            order_id=order.order_id,
            status=order.status,
            stage=order.stage,
            promised_date=promised,
        )
    if order.is_late and order.promised_date is not None:
        dispatcher.utter_message(
            response="utter_order_late_apology", days_late=(today - order.promised_date).days
        )


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
