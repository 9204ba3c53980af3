"""Order status for the chat: the order-number rule and a view safe to show anyone holding the number."""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Final

from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.models import Order
from crm_store.vocab import ORDER_CLOSED_STATUSES, ORDER_NOT_LATE_STATUSES

ORDER_ID_PATTERN: Final = re.compile(r"SO[0-9]{12}")

# Where the parcel is, in the words a customer uses: the status alone ("已发货") leaves them guessing.
ORDER_STAGES: Final = {
    "待付款": "订单还在等待付款",
    "已付款": "已付款，仓库正在备货",
    "已发货": "已从仓库发出，等待快递揽收",
    "运输中": "包裹正在运输途中",
    "派送中": "快递员正在派送，请保持电话畅通",
    "已签收": "包裹已经签收",
    "已取消": "订单已取消",
    "退货中": "退货正在处理中",
    "已退款": "款项已原路退回",
}
# Longer input cannot be an order number, however it is spaced; refuse it before normalising.
_MAX_INPUT_CHARS: Final = 64
_WHITESPACE: Final = re.compile(r"\s+")


def parse_order_id(text: str) -> str | None:
    """Normalise what a user typed into an order number `SO` + 12 digits, or None.

    Full-width characters become half-width, letters are upper-cased and spaces are dropped, so
    "ｓｏ２０２６ 1118 0001" is understood. Anything else around the number makes it invalid.
    """
    if len(text) > _MAX_INPUT_CHARS:
        return None
    # NFKC folds full-width letters, digits and the ideographic space to their ASCII forms.
    normalised = _WHITESPACE.sub("", unicodedata.normalize("NFKC", text)).upper()
    return normalised if ORDER_ID_PATTERN.fullmatch(normalised) else None


@dataclass(frozen=True)
class OrderStatusView:
    """Where an order stands.

    Deliberately without the customer's name, phone or address: this is what an unverified person
    who knows the order number may see.
    """

    order_id: str
    status: str
    stage: str
    carrier: str | None
    tracking_no: str | None
    order_date: date
    promised_date: date | None
    is_late: bool
    is_closed: bool


def get_order_status(session: Session, *, order_id: str, today: date | None = None) -> OrderStatusView | None:
    """The status of an order, or None if there is no such order.

    Args:
        session: An open session.
        order_id: The order number as typed; it is normalised with `parse_order_id`.
        today: The reference day for lateness; the CRM clock by default.

    Returns:
        The view, with `is_late` when the promised date has passed and the goods have not arrived.
    """
    normalised = parse_order_id(order_id)
    if normalised is None:
        return None
    order = session.get(Order, normalised)
    if order is None:
        return None
    reference = today if today is not None else clock.today()
    is_late = (
        order.status not in ORDER_NOT_LATE_STATUSES
        and order.promised_date is not None
        and order.promised_date < reference
    )
    return OrderStatusView(
        order_id=order.order_id,
        status=order.status,
        stage=ORDER_STAGES.get(order.status, order.status),
        carrier=order.carrier,
        tracking_no=order.tracking_no,
        order_date=order.order_date,
        promised_date=order.promised_date,
        is_late=is_late,
        is_closed=order.status in ORDER_CLOSED_STATUSES,
    )
