"""A verified customer's own data for the chat: recent orders and references to them, opt-out, value tier."""

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from crm_store.analytics.customer_value import customer_value_tier as value_tier_of
from crm_store.errors import NotFound
from crm_store.lapse import COUNTED_EXCLUDED_STATUSES
from crm_store.lookups import product_short_name
from crm_store.models import AuditLog, Customer, Order, OrderItem
from crm_store.orders import ORDER_ID_PATTERN
from crm_store.privacy import mask_phone, normalise_phone

RECENT_ORDERS_LIMIT: Final = 5
"""How many orders "我的订单" lists, newest first; references such as "第二个" point into this list."""

MIN_PRODUCT_OVERLAP: Final = 2
"""Characters a product mention must share, in a row, with a product name ("耳机" in "无线蓝牙耳机 Air3").

One character ("机") would match half the catalogue. An order scores the characters its best product
shares with the text in such runs ("降噪耳机": 4 with "降噪头戴耳机 Pro", 2 with "无线蓝牙耳机 Air3");
the best score wins. A tie between orders ("耳机那单" when two orders hold earphones) is ambiguous
and resolves to nothing, so the chat asks which one was meant instead of guessing. Plain character
runs need no word segmentation and no fuzzy-matching dependency, and are exact on model names.
"""

SPEND_EXCLUDED_STATUSES: Final = COUNTED_EXCLUDED_STATUSES
"""Orders that are not spend: unpaid, cancelled or refunded (the counted orders of `crm_store.lapse`)."""

_CHINESE_DIGITS: Final = {d: v for v, d in enumerate("零一二三四五六七八九")} | {"两": 2}
_NUMBER: Final = r"([0-9]{1,2}|[零一二两三四五六七八九十]{1,3})"
_REVERSE_ORDINAL: Final = re.compile(rf"倒数第{_NUMBER}")
_ORDINAL: Final = re.compile(rf"第{_NUMBER}")
# Just the position, as typed after a numbered list: "2", "二", "2号", "第2".
_BARE_NUMBER: Final = re.compile(rf"{_NUMBER}(?:号|个|单|笔)?(?:订单)?")
_OLDEST_WORDS: Final = ("最后一", "最后那", "最后的", "最后面", "最早", "最老", "最旧")
_NEWEST_WORDS: Final = ("最近", "最新", "刚买", "刚下", "刚刚", "上一单", "上一笔", "上次")
_SPACES: Final = re.compile(r"\s+")
# An order number inside a sentence, but not a piece of a longer run of digits.
_ORDER_NUMBER: Final = re.compile(rf"(?<![0-9A-Z]){ORDER_ID_PATTERN.pattern}(?![0-9])")


@dataclass(frozen=True)
class OrderSummary:
    """One order of a verified customer, as listed in the chat.

    `product_names` starts with the product of the largest line; `label` is the short form shown in
    a list, e.g. "11月18日 无线蓝牙耳机 Air3（运输中）".
    """

    order_id: str
    order_date: date
    status: str
    amount: Decimal
    promised_date: date | None
    product_names: tuple[str, ...]
    label: str


def _label(order: Order, names: Sequence[str]) -> str:
    day = f"{order.order_date.month}月{order.order_date.day}日"
    if not names:
        what = f"订单 {order.order_id}"
    elif len(names) == 1:
        what = names[0]
    else:
        what = f"{names[0]} 等{len(names)}件商品"
    return f"{day} {what}（{order.status}）"


def _summary(order: Order) -> OrderSummary:
    items = sorted(order.items, key=lambda item: (-(item.quantity * item.unit_price), item.product_id))
    names = tuple(item.product.name for item in items)
    return OrderSummary(
        order_id=order.order_id,
        order_date=order.order_date,
        status=order.status,
        amount=order.amount,
        promised_date=order.promised_date,
        product_names=names,
        label=_label(order, names),
    )


def recent_orders(
    session: Session, *, customer_id: str, limit: int = RECENT_ORDERS_LIMIT
) -> list[OrderSummary]:
    """The customer's latest orders, newest first (by order date, then order number)."""
    stmt = (
        select(Order)
        .where(Order.customer_id == customer_id)
        .order_by(Order.order_date.desc(), Order.order_id.desc())
        .limit(limit)
        .options(selectinload(Order.items).selectinload(OrderItem.product))
    )
    return [_summary(order) for order in session.scalars(stmt)]


def _number(text: str) -> int | None:
    """1 to 99 from "2", "12", "二", "两", "十二", "二十"."""
    if text.isascii():
        return int(text)
    if "十" not in text:
        return _CHINESE_DIGITS[text] if len(text) == 1 else None
    tens, _, units = text.partition("十")
    if "十" in units or len(tens) > 1 or len(units) > 1:
        return None
    value = (_CHINESE_DIGITS[tens] if tens else 1) * 10 + (_CHINESE_DIGITS[units] if units else 0)
    return value or None


def _at(orders: Sequence[OrderSummary], position: int | None) -> OrderSummary | None:
    """The order at a 1-based position; negative positions count from the end."""
    if position is None or position == 0 or abs(position) > len(orders):
        return None
    return orders[position - 1] if position > 0 else orders[position]


def _compact(text: str) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", text)).lower()


def _longest_common_run(a: str, b: str) -> tuple[int, int, int]:
    """The longest common substring of `a` and `b`: its length and where it ends in each (plain DP)."""
    best = (0, 0, 0)
    previous = [0] * (len(b) + 1)
    for i, char in enumerate(a, start=1):
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            if char == other:
                current[j] = previous[j - 1] + 1
                if current[j] > best[0]:
                    best = (current[j], i, j)
        previous = current
    return best


def _shared_runs(text: str, name: str) -> int:
    """Characters of `name` found in `text` in runs of at least `MIN_PRODUCT_OVERLAP`, longest first.

    "降噪耳机" shares 4 with "降噪头戴耳机 Pro" ("降噪" and "耳机") but 2 with "无线蓝牙耳机 Air3".
    """
    total = 0
    while True:
        length, end_text, end_name = _longest_common_run(text, name)
        if length < MIN_PRODUCT_OVERLAP:
            return total
        total += length
        # Blank the run out of both with characters that match nothing, then look for the next one.
        text = text[: end_text - length] + "\x00" * length + text[end_text:]
        name = name[: end_name - length] + "\x01" * length + name[end_name:]


def _product_matches(orders: Sequence[OrderSummary], text: str) -> list[OrderSummary]:
    """The orders whose products the text names best (see `MIN_PRODUCT_OVERLAP`); [] when none does."""
    compact = _compact(text)
    scores: list[int] = []
    for order in orders:
        names = set(order.product_names)
        names.update(short for name in order.product_names if (short := product_short_name(name)))
        scores.append(max((_shared_runs(compact, _compact(name)) for name in names), default=0))
    best = max(scores, default=0)
    if best < MIN_PRODUCT_OVERLAP:
        return []
    return [order for order, score in zip(orders, scores, strict=True) if score == best]


def resolve_order_reference(orders: Sequence[OrderSummary], text: str) -> OrderSummary | None:
    """The order of `orders` (as listed, newest first) that `text` refers to, or None.

    Understood, in this order of precedence:
    - an order number (only one in the list counts; another customer's number gives None);
    - a position: "第二个", "第2单", "倒数第一", or just "2" as typed after the list;
    - a product: "耳机那单", "扫地机器人那个" (see `MIN_PRODUCT_OVERLAP`), optionally with
      "最近"/"最新" (newest) or "最后一个"/"最早" (last in the list) to choose between several;
    - "最近那单", "最新的" alone: the first order; "最后一个" alone: the last one.
    Anything ambiguous gives None, so that the chat asks instead of acting on the wrong order.
    """
    if not orders or len(text) > 200:
        return None
    compact = _compact(text)

    order_number = _ORDER_NUMBER.search(compact.upper())
    if order_number is not None:
        return next((o for o in orders if o.order_id == order_number.group()), None)

    if match := _REVERSE_ORDINAL.search(compact):
        position = _number(match[1])
        return _at(orders, -position if position else None)
    if match := _ORDINAL.search(compact):
        return _at(orders, _number(match[1]))
    if match := _BARE_NUMBER.fullmatch(compact):
        return _at(orders, _number(match[1]))

    candidates = _product_matches(orders, compact)
    if any(word in compact for word in _NEWEST_WORDS):
        return (candidates or list(orders))[0]
    if any(word in compact for word in _OLDEST_WORDS):
        return (candidates or list(orders))[-1]
    return candidates[0] if len(candidates) == 1 else None


def find_customer_by_phone(session: Session, phone: str) -> Customer | None:
    """The customer with this mobile number (typed forms accepted), or None.

    None too when several customers share the number: acting on one of them would be a guess.
    """
    normalised = normalise_phone(phone)
    if normalised is None:
        return None
    found = session.scalars(select(Customer).where(Customer.phone == normalised).limit(2)).all()
    return found[0] if len(found) == 1 else None


def registered_phone(session: Session, *, customer_id: str) -> str | None:
    """The customer's phone on file, e.g. as the contact number of a complaint the customer confirms.

    For the store's use only: a reply shows it masked (`crm_store.privacy.mask_phone`).
    """
    return session.scalar(select(Customer.phone).where(Customer.customer_id == customer_id))


def set_opt_out(
    session: Session, *, customer_id: str, actor_role: str, actor_id: str | None, opt_out: bool = True
) -> bool:
    """Set (or with `opt_out=False` clear) the customer's opt-out of marketing and care messages.

    Returns:
        True if the flag changed; an audit row (ids and the field only) is written only then.

    Raises:
        NotFound: No such customer ("customer_not_found").
    """
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    if customer.opt_out == opt_out:
        return False
    customer.opt_out = opt_out
    session.add(
        AuditLog(
            actor_role=actor_role,
            actor_id=actor_id,
            action="opt_out" if opt_out else "opt_in",
            entity="customer",
            entity_id=customer_id,
            detail={"field": "opt_out", "value": opt_out},
        )
    )
    session.flush()
    return True


@dataclass(frozen=True)
class OptOut:
    """The result of `opt_out_from_chat`: whose flag it was, their phone masked, and whether it changed."""

    customer_id: str
    masked_phone: str
    changed: bool


def opt_out_from_chat(
    session: Session, *, customer_id: str | None, phone: str | None, actor_id: str | None
) -> OptOut:
    """Opt the verified customer out, or, without one, the single customer whose mobile `phone` is.

    Args:
        session: An open session; the caller commits.
        customer_id: The verified customer, if any; `phone` is then not used.
        phone: As typed, for a sender not verified.
        actor_id: Who asked, for the audit row (a conversation key, never the conversation id).

    Raises:
        NotFound: No such customer, or no single customer with that phone ("customer_not_found";
            the phone itself is never in the error).
    """
    customer = session.get(Customer, customer_id) if customer_id is not None else None
    if customer is None and customer_id is None and phone is not None:
        customer = find_customer_by_phone(session, phone)
    if customer is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    changed = set_opt_out(session, customer_id=customer.customer_id, actor_role="customer", actor_id=actor_id)
    return OptOut(customer_id=customer.customer_id, masked_phone=mask_phone(customer.phone), changed=changed)


def customer_value_tier(session: Session, *, customer_id: str, today: date) -> str:
    """关键, 普通 or 小客户 by cumulative revenue share of the window's spend (the 20/80 rule).

    One rule, one home: `crm_store.analytics.customer_value` (docs/analytics.md). The customer's
    scored tier of the last refresh, or the same rule computed now for a customer not scored yet.

    Raises:
        NotFound: No such customer ("customer_not_found").
    """
    return value_tier_of(session, customer_id=customer_id, today=today)
