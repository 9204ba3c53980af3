"""The staff side through the real stack: sign in, log a visit from one sentence, scope of the 360 view.

The stack runs on the demo company with CRM_TODAY=2026-11-23 (a Monday), so "下周二" is 2026-12-01.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_stack import RunningStack
from sqlalchemy import func, select
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
