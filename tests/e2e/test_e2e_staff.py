"""The staff side through the real stack: sign in, log a visit from one sentence, scope of the 360 view.

The stack runs on the demo company with CRM_TODAY=2026-11-23 (a Monday), so "下周二" is 2026-12-01.
"""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from e2e_stack import RunningStack
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import AuditLog, Interaction, Task

pytestmark = pytest.mark.e2e

ZHANG_PHONE = "18201164104"
ZHANG_NOTE = "靠窗"


@pytest.fixture
def store(running_stack: RunningStack) -> Iterator[Session]:
    engine = create_engine_for(running_stack.database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def _text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("text") or "") for m in messages)


def test_a_salesperson_logs_a_call_in_one_sentence(running_stack: RunningStack, store: Session) -> None:
    token = running_stack.sign_in("E03")
    before = store.scalar(
        select(func.count()).select_from(Interaction).where(Interaction.customer_id == "C0003")
    )

    card = running_stack.chat(
        "e2e-staff-visit", "刚和华峰科技的王芳通了电话，她对二期报价挺感兴趣，下周二再联系她", token=token
    )

    shown = _text(card)
    assert "王芳" in shown and "电话" in shown and "2026年12月1日" in shown
    assert any(b.get("title") == "确认" for m in card for b in m.get("buttons") or [])
    assert [m["custom"]["card"] for m in card if m.get("custom")] == ["visit_draft"]

    saved = _text(running_stack.chat("e2e-staff-visit", "/affirm", token=token))

    assert "已记好" in saved and "2026年12月1日" in saved
    store.expire_all()
    interactions = store.scalars(
        select(Interaction).where(Interaction.customer_id == "C0003").order_by(Interaction.interaction_id)
    ).all()
    assert len(interactions) == before + 1
    new = interactions[-1]
    assert (new.employee_id, new.kind) == ("E03", "电话")
    tasks = store.scalars(select(Task).where(Task.customer_id == "C0003", Task.status == "待办")).all()
    assert [(t.due_date.isoformat(), t.owner_id) for t in tasks] == [("2026-12-01", "E03")]
    audit_rows = store.scalars(select(AuditLog).where(AuditLog.entity_id == new.interaction_id)).all()
    assert audit_rows and {row.actor_id for row in audit_rows} == {"E03"}


def test_an_anonymous_sender_gets_nothing_of_a_customer_file(running_stack: RunningStack) -> None:
    messages = running_stack.chat("e2e-anon-360", "查一下张伟的档案")

    shown = repr(messages)
    assert ZHANG_PHONE not in shown and ZHANG_PHONE[-4:] not in shown and ZHANG_NOTE not in shown
    assert "员工" in _text(messages)


def test_the_owner_sees_the_whole_picture_and_the_manager_of_another_region_nothing(
    running_stack: RunningStack,
) -> None:
    owner = running_stack.chat("e2e-360-owner", "查一下张伟的档案", token=running_stack.sign_in("E02"))
    assert ZHANG_PHONE in _text(owner) and ZHANG_NOTE in _text(owner)
    assert [m["custom"]["data"]["customer_id"] for m in owner if m.get("custom")] == ["C0001"]

    other = running_stack.chat("e2e-360-other", "查一下张伟的档案", token=running_stack.sign_in("E03"))
    assert ZHANG_PHONE[-4:] not in repr(other) and ZHANG_NOTE not in repr(other)


def _region_sales(store: Session, start: str, end: str) -> str:
    """华东's counted sales between two days, by hand-written SQL, as the answer writes money."""
    total = store.execute(
        text(
            "SELECT COALESCE(SUM(o.amount), 0) FROM orders o JOIN customers c USING (customer_id) "
            "WHERE c.region = '华东' AND o.order_date BETWEEN :start AND :end "
            "AND o.status NOT IN ('待付款', '已取消', '已退款')"
        ),
        {"start": start, "end": end},
    ).scalar_one()
    return f"¥{Decimal(total):,.2f}"


def test_a_manager_asks_for_the_figures_and_follows_up(running_stack: RunningStack, store: Session) -> None:
    token = running_stack.sign_in("E01")  # 陈思远, manager of 华东

    answer = running_stack.chat("e2e-manager", "上个月华东区的销售额是多少", token=token)

    assert _region_sales(store, "2026-10-01", "2026-10-31") in _text(answer)
    assert [m["custom"]["card"] for m in answer if m.get("custom")] == ["manager_answer"]

    follow_up = _text(running_stack.chat("e2e-manager", "那上上个月呢", token=token))

    assert "2026年9月" in follow_up
    assert _region_sales(store, "2026-09-01", "2026-09-30") in follow_up


def test_a_manager_gets_no_figures_of_another_region(running_stack: RunningStack) -> None:
    token = running_stack.sign_in("E01")

    answer = _text(running_stack.chat("e2e-manager-scope", "华南上个月的销售额", token=token))

    assert "抱歉" in answer and "¥" not in answer
