"""How dates, times and the values of a reply are written for customers."""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.complaints import TicketStatusView, ticket_status
from crm_store.customers import recent_orders
from crm_store.formatting import (
    cn_date,
    cn_date_or_unknown,
    cn_time,
    or_not_set,
    order_lines,
    ticket_lines,
    ticket_status_fields,
)

TODAY = date(2026, 11, 23)  # a Monday


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 22), "2026年11月22日（昨天，周日）"),
        (date(2026, 11, 23), "2026年11月23日（今天，周一）"),
        (date(2026, 11, 24), "2026年11月24日（明天，周二）"),
        (date(2026, 11, 25), "2026年11月25日（后天，周三）"),
        (date(2026, 11, 27), "2026年11月27日（周五）"),
        (date(2027, 1, 3), "2027年1月3日（周日）"),
    ],
)
def test_cn_date_says_the_full_date_with_a_hint(day: date, expected: str) -> None:
    assert cn_date(day, today=TODAY) == expected


def test_cn_time_is_beijing_time() -> None:
    assert cn_time(datetime(2026, 11, 24, 13, 0, tzinfo=clock.TZ)) == "11月24日 13:00"
    assert cn_time(datetime(2026, 11, 23, 17, 5, tzinfo=UTC)) == "11月24日 01:05"


def test_missing_values_are_said_so() -> None:
    assert cn_date_or_unknown(None, today=TODAY) == "暂未确定"
    assert cn_date_or_unknown(date(2026, 11, 24), today=TODAY) == "2026年11月24日（明天，周二）"
    assert (or_not_set(None), or_not_set(""), or_not_set("顺丰速运")) == ("无", "无", "顺丰速运")


def test_tickets_and_orders_as_reply_values(demo_store: sessionmaker[Session]) -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ)
    with demo_store() as session:
        view = ticket_status(session, ticket_id="T09001", now=now)
        orders = recent_orders(session, customer_id="C0001")
    assert isinstance(view, TicketStatusView)
    fields = ticket_status_fields(view)
    assert set(fields) == {"ticket_id", "category", "status", "assignee_role", "deadline"}
    assert fields["deadline"] == cn_time(view.deadline)
    assert ticket_lines([view]) == (
        f"T09001（{view.category or '其他'}）{view.status}，时限 {cn_time(view.deadline)}"
    )
    assert order_lines(orders).splitlines()[0] == f"1. {orders[0].label}"


def test_a_ticket_without_category_or_assignee_still_reads_well() -> None:
    view = TicketStatusView(
        ticket_id="T00001",
        status="新建",
        category=None,
        priority="低",
        opened_at=TODAY,
        assignee_role=None,
        deadline=datetime(2026, 11, 26, 10, 0, tzinfo=clock.TZ),
        is_open=True,
        is_overdue=False,
        rating=None,
    )
    assert ticket_status_fields(view) == {
        "ticket_id": "T00001",
        "category": "其他",
        "status": "新建",
        "assignee_role": "客服",
        "deadline": "11月26日 10:00",
    }
