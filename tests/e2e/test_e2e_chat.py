"""Chatting in Chinese with the real assistant: API → Rasa → action server → CRM store."""

import httpx
import pytest
from e2e_stack import RunningStack

pytestmark = pytest.mark.e2e


def test_health_is_ok_when_every_component_is_up(running_stack: RunningStack) -> None:
    response = httpx.get(f"{running_stack.api_url}/health", timeout=10)

    assert response.status_code == 200
    components = response.json()["components"]
    assert {name: c["ok"] for name, c in components.items()} == {
        "database": True,
        "rasa": True,
        "action_server": True,
    }


def test_order_status_answered_from_one_message(running_stack: RunningStack) -> None:
    reply = running_stack.chat_text("e2e-order-1", "帮我查一下订单SO202611180001到哪了")

    assert "运输中" in reply
    assert "顺丰速运" in reply
    assert "SF1234567890" in reply
    assert "2026年11月24日" in reply
    # An order number alone must not reveal who ordered it.
    assert "张伟" not in reply
    assert "18201164104" not in reply


def test_bot_asks_for_the_order_number_then_answers(running_stack: RunningStack) -> None:
    question = running_stack.chat_text("e2e-order-2", "我想查一下我的订单")
    assert "订单号" in question

    answer = running_stack.chat_text("e2e-order-2", "SO202611100004")
    assert "运输中" in answer
    assert "京东物流" in answer
    assert "JD2026111000" in answer
    # Promised for 2026-11-15, so eight days late on the reference day.
    assert "超过承诺送达日期 8 天" in answer


def test_unknown_order_number_gets_a_clear_not_found(running_stack: RunningStack) -> None:
    reply = running_stack.chat_text("e2e-order-3", "帮我查下订单SO000")

    assert "没有找到" in reply
    assert "SO000" in reply


def test_well_formed_but_unknown_order_number_is_not_found(running_stack: RunningStack) -> None:
    reply = running_stack.chat_text("e2e-order-4", "订单SO209901019999到哪了")

    assert "没有找到订单 SO209901019999" in reply


def test_customer_can_give_up_while_asked_for_the_number(running_stack: RunningStack) -> None:
    running_stack.chat_text("e2e-order-5", "查订单")
    reply = running_stack.chat_text("e2e-order-5", "算了，不查了")

    assert "不查了" in reply or "还有什么可以帮您" in reply
    # The next order question starts afresh.
    assert "订单号" in running_stack.chat_text("e2e-order-5", "帮我查个订单")


def test_bot_says_honestly_that_it_is_a_bot(running_stack: RunningStack) -> None:
    assert "机器人" in running_stack.chat_text("e2e-bot", "你是真人还是机器人啊")


@pytest.mark.parametrize(
    "message",
    ["", "   ", "啊" * 10_000, "🙂🙂🙂", "'; DROP TABLE orders; --", "SELECT * FROM customers"],
    ids=["empty", "blank", "10k-chars", "emoji", "sql-drop", "sql-select"],
)
def test_absurd_messages_get_a_polite_reply(running_stack: RunningStack, message: str) -> None:
    messages = running_stack.chat("e2e-absurd", message)

    assert messages, "every message deserves an answer"
    text = "".join(str(m.get("text", "")) for m in messages)
    assert text.strip()
    assert "Traceback" not in text


def test_store_is_intact_after_absurd_messages(running_stack: RunningStack) -> None:
    running_stack.chat("e2e-sql", "'; DROP TABLE orders; --")

    assert "SF1234567890" in running_stack.chat_text("e2e-sql-2", "查订单 SO202611180001")
