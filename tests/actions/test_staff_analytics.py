"""Managers' questions by chat, run as the action server runs them, on the demo store (2026-11-23).

E01 陈思远 manages 华东; E02 王丽 sells in 华东 and owns 张伟 (C0001), 李娜 (C0002) and others. Every
figure is computed here by hand-written SQL over the demo data, not by the semantic layer.
"""

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from staff_trackers import responses, run, said, staff_tracker

from actions.staff_analytics import SPEC_SLOT, ActionAnswerManagerQuery
from crm_store.analytics.spec import QuerySpec
from knowledge.manager_query.asking import clear_vocabulary_cache

COUNTED = "status NOT IN ('待付款', '已取消', '已退款')"

# SQLite only: these tests are about the conversation (context, links, refusals); the same figures on
# PostgreSQL are the semantic layer's tests (tests/store/test_analytics_query.py).
pytestmark = pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def fresh_vocabulary() -> None:
    clear_vocabulary_cache()  # each test's demo store is a new database


def _ask(text_: str, employee: str | None, domain: dict[str, Any], previous: QuerySpec | None = None) -> Any:
    slots = {SPEC_SLOT: json.dumps(previous.to_json(), ensure_ascii=False)} if previous else {}
    tracker = staff_tracker(text_, employee=employee, intent="manager_query", slots=slots)
    return run(ActionAnswerManagerQuery(), tracker, domain)


def _region_sales(session: Session, region: str, start: str, end: str) -> Decimal:
    total = session.execute(
        text(
            f"SELECT COALESCE(SUM(o.amount), 0) FROM orders o JOIN customers c USING (customer_id) "
            f"WHERE c.region = :region AND o.order_date BETWEEN :start AND :end AND o.{COUNTED}"
        ),
        {"region": region, "start": start, "end": end},
    ).scalar_one()
    return Decimal(total)


def _yuan(amount: Decimal) -> str:
    return f"¥{amount:,.2f}"


def test_a_manager_gets_last_months_sales_of_the_region(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, slots = _ask("上个月华东区的销售额是多少", "E01", domain)

    with action_store() as session:
        expected = _region_sales(session, "华东", "2026-10-01", "2026-10-31")
    assert responses(dispatcher) == ["utter_manager_answer"]
    answer = dispatcher.messages[0]["answer"]
    assert "2026年10月" in answer and "销售额" in answer
    assert _yuan(expected) in answer
    spec = QuerySpec.from_json(json.loads(slots[SPEC_SLOT]))
    assert spec.metric == "sales" and spec.filter_values("region") == ("华东",)


def test_the_answer_links_to_its_chart_on_the_dashboard(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, slots = _ask("本季度销售额前五的客户", "E01", domain)

    cards = [m["custom"] for m in dispatcher.messages if m.get("custom")]
    assert len(cards) == 1 and cards[0]["card"] == "manager_answer"
    link = cards[0]["data"]["dashboard"]
    assert link.startswith("/dashboard?spec=")
    encoded = link.removeprefix("/dashboard?spec=")
    drawn = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert drawn == json.loads(slots[SPEC_SLOT])
    assert drawn["top_n"] == 5 and drawn["group_by"] == ["customer"]


def test_a_follow_up_changes_only_the_period(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    _, slots = _ask("上个月华东区的销售额是多少", "E01", domain)
    previous = QuerySpec.from_json(json.loads(slots[SPEC_SLOT]))

    dispatcher, slots = _ask("那上上个月呢", "E01", domain, previous=previous)

    with action_store() as session:
        expected = _region_sales(session, "华东", "2026-09-01", "2026-09-30")
    answer = dispatcher.messages[0]["answer"]
    assert "2026年9月" in answer and _yuan(expected) in answer
    followed = QuerySpec.from_json(json.loads(slots[SPEC_SLOT]))
    assert followed.filter_values("region") == ("华东",) and followed.metric == "sales"


def test_a_salesperson_sees_only_their_own_customers(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, _ = _ask("这个月的订单数", "E02", domain)

    with action_store() as session:
        mine = session.execute(
            text(
                "SELECT COUNT(*) FROM orders o JOIN customers c USING (customer_id) "
                "WHERE c.owner_id = 'E02' AND o.order_date BETWEEN '2026-11-01' AND '2026-11-23' "
                f"AND o.{COUNTED}"
            )
        ).scalar_one()
        everyone = session.execute(
            text(
                "SELECT COUNT(*) FROM orders WHERE order_date BETWEEN '2026-11-01' AND '2026-11-23' "
                f"AND {COUNTED}"
            )
        ).scalar_one()
    assert mine != everyone  # the demo data tells the two apart
    assert f"{mine} 单" in dispatcher.messages[0]["answer"]


def test_another_region_is_refused_without_figures(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, slots = _ask("华南上个月的销售额", "E01", domain)

    answer = dispatcher.messages[0]["answer"]
    assert "华南" in answer and "抱歉" in answer
    assert "¥" not in answer
    assert slots == {}


def test_a_customer_gets_no_figures(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    dispatcher, slots = _ask("上个月华东区的销售额是多少", None, domain)

    assert responses(dispatcher) == ["utter_staff_only"]
    assert "¥" not in said(dispatcher) and slots == {}


def test_an_unsupported_question_lists_what_can_be_asked_as_buttons(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher, _ = _ask("上个月的利润是多少", "E01", domain)

    assert responses(dispatcher) == ["utter_manager_unsupported"]
    message = dispatcher.messages[0]
    assert "销售额" in message["answer"]
    assert message["buttons"] and all(b["title"] == b["payload"] for b in message["buttons"])
