"""Customer self-service through the real stack: verification, my orders, complaints, opt-out."""

from collections.abc import Iterator

import pytest
from e2e_stack import RunningStack
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import Customer, HandoffCase, Ticket

pytestmark = pytest.mark.e2e


@pytest.fixture
def store(running_stack: RunningStack) -> Iterator[Session]:
    engine = create_engine_for(running_stack.database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_verified_customer_sees_their_orders_and_picks_one(running_stack: RunningStack) -> None:
    sender = "e2e-verify-1"
    assert "手机号" in running_stack.chat_text(sender, "我的订单")
    assert "订单号" in running_stack.chat_text(sender, "18201164104")

    listing = running_stack.chat_text(sender, "SO202611180001")

    assert "182****4104" in listing
    assert "18201164104" not in listing
    assert "无线蓝牙耳机 Air3" in listing
    first = running_stack.chat_text(sender, "第一个")
    assert "SO202611180001" in first
    assert "运输中" in first


def test_three_wrong_verifications_lock_for_fifteen_minutes(running_stack: RunningStack) -> None:
    sender = "e2e-verify-lock"
    running_stack.chat_text(sender, "我的订单")
    replies = []
    for _ in range(3):
        running_stack.chat_text(sender, "13800138000")
        replies.append(running_stack.chat_text(sender, "SO202611180001"))

    assert "还可以再试 2 次" in replies[0]
    assert "还可以再试 1 次" in replies[1]
    assert "失败次数过多" in replies[2]


def test_complaint_is_filed_with_a_ticket_and_deadline(running_stack: RunningStack, store: Session) -> None:
    sender = "e2e-complaint-1"
    before = set(store.scalars(select(Ticket.ticket_id)))

    assert "描述" in running_stack.chat_text(sender, "我要投诉")
    assert "订单" in running_stack.chat_text(sender, "买的智能手环用了两天就坏了，屏幕不亮")
    assert "产品质量" in running_stack.chat_text(sender, "没有")
    assert "联系电话" in running_stack.chat_text(sender, "对")
    filed = running_stack.chat_text(sender, "13800138000")

    new = set(store.scalars(select(Ticket.ticket_id))) - before
    assert len(new) == 1
    (ticket_id,) = new
    assert f"工单号 {ticket_id}" in filed
    assert "产品质量" in filed
    assert "前联系您" in filed
    assert "打个分" in filed

    thanks = running_stack.chat_text(sender, '/rate{"rating":"4"}')
    assert "4 分" in thanks
    store.expire_all()
    assert store.get(Ticket, ticket_id).rating == 4  # type: ignore[union-attr]


def test_serious_complaint_goes_to_a_person(running_stack: RunningStack, store: Session) -> None:
    sender = "e2e-complaint-2"
    running_stack.chat_text(sender, "我要投诉，电热水壶用的时候漏电了，差点出事")
    running_stack.chat_text(sender, "没有")
    running_stack.chat_text(sender, "对")
    filed = running_stack.chat_text(sender, "13912345678")

    assert "优先级：高" in filed
    assert "人工客服" in filed
    assert store.scalar(select(HandoffCase).where(HandoffCase.sender_id == sender)) is not None


def test_complaint_status_by_ticket_number(running_stack: RunningStack) -> None:
    reply = running_stack.chat_text("e2e-ticket", "T09001 处理得怎么样了")

    assert "T09001" in reply
    assert "处理中" in reply
    assert "物流配送" in reply


def test_opt_out_by_phone_is_stored(running_stack: RunningStack, store: Session) -> None:
    sender = "e2e-optout"
    assert "手机号" in running_stack.chat_text(sender, "以后别给我发促销短信了，我要退订")
    reply = running_stack.chat_text(sender, "17205673406")

    assert "172****3406" in reply
    store.expire_all()
    assert store.get(Customer, "C0003").opt_out is True  # type: ignore[union-attr]
