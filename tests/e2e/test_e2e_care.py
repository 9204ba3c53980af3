"""Proactive care through the real stack: the scheduler that `crmbot up` starts, the staff chat, Rasa.

The stack runs on the demo company with CRM_TODAY=2026-11-23; the care scheduler computes what is
due as soon as it starts. E02 王丽 owns 张伟 (birthday 11-25) and 李娜 (11-24, opted out), so her
staff inbox gets their birthday reminders that day, whatever the hour (staff notices are never
held by quiet hours). They reach her open chat through Rasa's trigger_intent as `utter_care_notice`.
"""

import time
from typing import Any

import httpx
import pytest
from e2e_stack import RunningStack

pytestmark = pytest.mark.e2e

# The scheduler's first run starts with the stack; on a busy machine it can take a while.
CARE_WAIT_S = 120
ZHANG_BIRTHDAY = "2026年11月25日（后天，周三）"
BLESS = "记得送上祝福。"


def _notices_until(stack: RunningStack, token: str, sender: str, wanted: str) -> list[dict[str, Any]]:
    """Poll as the page does until a shown message contains `wanted` (or the wait is over)."""
    shown: list[dict[str, Any]] = []
    deadline = time.monotonic() + CARE_WAIT_S
    while time.monotonic() < deadline:
        shown += stack.updates(sender, token=token)
        if any(wanted in str(m.get("text")) for m in shown):
            break
        time.sleep(2)
    return shown


def test_birthday_reminders_reach_the_owners_open_chat_once(running_stack: RunningStack) -> None:
    token = running_stack.sign_in("E02")
    sender = "e2e-care-e02"
    assert running_stack.chat_text(sender, "你好", token=token)  # the conversation is open

    shown = _notices_until(running_stack, token, sender, "张伟")

    texts = [str(m.get("text")) for m in shown]
    zhang = [t for t in texts if "张伟" in t and "生日" in t]
    assert zhang == [f"【生日提醒】王丽，您好：您的客户张伟（C0001）将于{ZHANG_BIRTHDAY}过生日，{BLESS}"]
    li_na = [t for t in texts if "李娜" in t and "生日" in t]
    assert li_na and "不会发送祝福" in li_na[0]
    # Shown once: the next poll does not repeat them.
    again = [str(m.get("text")) for m in running_stack.updates(sender, token=token)]
    assert not [t for t in again if "生日" in t]
    # Pushed into the conversation through Rasa, so the notice is part of its history.
    tracker = httpx.get(
        f"http://127.0.0.1:{running_stack.rasa_port}/conversations/staff:E02:{sender}/tracker", timeout=30
    ).json()
    intents = [e["parse_data"]["intent"]["name"] for e in tracker["events"] if e.get("event") == "user"]
    assert "care_notice" in intents


def test_another_salesperson_gets_none_of_them(running_stack: RunningStack) -> None:
    # After the test above, the scheduler has run. (E03's own notices may already have been shown
    # to the browser test's page: what matters here is that E02's customers never are.)
    token = running_stack.sign_in("E03")
    sender = "e2e-care-e03"
    running_stack.chat_text(sender, "你好", token=token)

    shown = running_stack.updates(sender, token=token)

    assert not [m for m in shown if "张伟" in str(m.get("text")) or "李娜" in str(m.get("text"))]
