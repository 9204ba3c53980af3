"""How dates, times and the values of a reply are written for customers, in Chinese.

The bot's responses (bot/domain/*.yml) hold the sentences; these functions fill their variables:
a date with no doubt about the day, a deadline in Beijing time, "无" where a value is missing.
"""

from collections.abc import Iterable
from datetime import date, datetime
from typing import Final

from crm_store import clock
from crm_store.complaints import ComplaintReceipt, TicketStatusView
from crm_store.customers import OrderSummary
from crm_store.vocab import COMPLAINT_CATEGORY_OTHER

_WEEKDAYS: Final = "一二三四五六日"
_RELATIVE_DAYS: Final = {-1: "昨天", 0: "今天", 1: "明天", 2: "后天"}

NOT_SET: Final = "无"
"""A missing carrier or tracking number."""

DATE_NOT_SET: Final = "暂未确定"
"""A promised date the store does not have yet."""

SOMEONE_IN_SERVICE: Final = "客服"
"""Who handles a ticket that has no assignee (yet)."""


def cn_date(day: date, *, today: date) -> str:
    """`2026年11月24日（明天，周二）`: the full date, so there is no doubt, with a relative hint."""
    weekday = f"周{_WEEKDAYS[day.weekday()]}"
    relative = _RELATIVE_DAYS.get((day - today).days)
    hint = f"{relative}，{weekday}" if relative else weekday
    return f"{day.year}年{day.month}月{day.day}日（{hint}）"


def cn_time(moment: datetime) -> str:
    """`11月24日 13:00` in Beijing time: deadlines and when a person will answer."""
    local = moment.astimezone(clock.TZ)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def cn_date_or_unknown(day: date | None, *, today: date) -> str:
    """`cn_date`, or `DATE_NOT_SET` when there is no date."""
    return cn_date(day, today=today) if day is not None else DATE_NOT_SET


def or_not_set(value: str | None) -> str:
    """The value, or `NOT_SET` when it is missing or empty."""
    return value or NOT_SET


def receipt_fields(receipt: ComplaintReceipt) -> dict[str, str]:
    """The variables of the reply to a filed complaint (`utter_complaint_filed`)."""
    return {
        "ticket_id": receipt.ticket_id,
        "category": receipt.category,
        "priority": receipt.priority,
        "assignee_role": receipt.assignee_role,
        "deadline": cn_time(receipt.deadline),
    }


def ticket_status_fields(view: TicketStatusView) -> dict[str, str]:
    """The variables of the reply about one ticket (`utter_ticket_status`)."""
    return {
        "ticket_id": view.ticket_id,
        "category": view.category or COMPLAINT_CATEGORY_OTHER,
        "status": view.status,
        "assignee_role": view.assignee_role or SOMEONE_IN_SERVICE,
        "deadline": cn_time(view.deadline),
    }


def ticket_lines(tickets: Iterable[TicketStatusView]) -> str:
    """One line per ticket: `T09001（物流配送）处理中，时限 11月24日 13:00`."""
    return "\n".join(
        f"{t.ticket_id}（{t.category or COMPLAINT_CATEGORY_OTHER}）{t.status}，时限 {cn_time(t.deadline)}"
        for t in tickets
    )


def order_lines(orders: Iterable[OrderSummary]) -> str:
    """A numbered list of orders, as "第二个" refers to them: `1. 11月18日 无线蓝牙耳机 Air3（运输中）`."""
    return "\n".join(f"{n}. {order.label}" for n, order in enumerate(orders, start=1))
