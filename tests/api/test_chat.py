"""Tests of `POST /api/chat`, the gateway from the web to Rasa."""

import logging
from typing import Any

import httpx
import pytest
from api_stubs import StubServices
from fastapi.testclient import TestClient

from api.routes.chat import EMPTY_MESSAGE_REPLY, UNAVAILABLE_REPLY

TOO_LONG_REPLY = "您的消息有点长（超过 2000 字），请精简后再发给我，或分几次发送。"


def post_chat(client: TestClient, message: str, **extra: object) -> Any:
    return client.post("/api/chat", json={"sender": "web-u1", "message": message, **extra})


def test_chat_returns_rasa_reply_unchanged(client: TestClient, stubs: StubServices) -> None:
    response = post_chat(client, "你好")

    assert response.status_code == 200
    assert response.json() == stubs.rasa_reply


def test_chat_forwards_sender_message_and_customer_role(client: TestClient, stubs: StubServices) -> None:
    post_chat(client, "我的订单 SO202611180001 到哪了？")

    assert stubs.webhook_calls == [
        {
            "sender": "web-u1",
            "message": "我的订单 SO202611180001 到哪了？",
            "metadata": {"channel": "web", "role": "customer", "principal_id": None},
        }
    ]


def test_chat_overrides_client_role_but_keeps_other_metadata(client: TestClient, stubs: StubServices) -> None:
    post_chat(client, "查一下客户", metadata={"role": "manager", "principal_id": "E001", "channel": "web"})

    assert stubs.webhook_calls[0]["metadata"] == {"channel": "web", "role": "customer", "principal_id": None}


@pytest.mark.parametrize(
    "message",
    ["", "   ", "\n\t \r\n", "\x00\x07"],
    ids=["empty", "spaces", "whitespace-and-newlines", "only-control-characters"],
)
def test_chat_refuses_empty_message(client: TestClient, stubs: StubServices, message: str) -> None:
    response = post_chat(client, message)

    assert response.status_code == 200
    assert response.json() == [{"text": EMPTY_MESSAGE_REPLY}]
    assert stubs.webhook_calls == []


def test_chat_refuses_message_over_2000_chars(client: TestClient, stubs: StubServices) -> None:
    response = post_chat(client, "好" * 2001)

    assert response.status_code == 200
    assert response.json() == [{"text": TOO_LONG_REPLY}]
    assert stubs.webhook_calls == []


@pytest.mark.parametrize("message", ["a" * 2000, "好" * 2000, "😀" * 2000], ids=["ascii", "hanzi", "emoji"])
def test_chat_forwards_message_of_exactly_2000_chars(
    client: TestClient, stubs: StubServices, message: str
) -> None:
    response = post_chat(client, message)

    assert response.status_code == 200
    assert [call["message"] for call in stubs.webhook_calls] == [message]


@pytest.mark.parametrize(
    "message",
    [
        "谢谢你👍🏻😀，家人👨‍👩‍👧 都满意",
        "'; DROP TABLE customers; --",
        "1' OR '1'='1",
        "<script>alert('x')</script>",
    ],
    ids=["emoji", "sql-drop", "sql-or", "html"],
)
def test_chat_forwards_emoji_and_sql_fragments_intact(
    client: TestClient, stubs: StubServices, message: str
) -> None:
    response = post_chat(client, message)

    assert response.status_code == 200
    assert stubs.webhook_calls[0]["message"] == message


def test_chat_strips_control_characters_but_keeps_newlines(client: TestClient, stubs: StubServices) -> None:
    post_chat(client, "你好\x00\x07\r\n世界\x1b[31m\x7f\x85！\t好")

    assert stubs.webhook_calls[0]["message"] == "你好\n世界[31m！ 好"


def test_chat_strips_lone_surrogates(client: TestClient, stubs: StubServices) -> None:
    # Python's JSON parser accepts an unpaired "\ud800", which cannot be sent on as UTF-8.
    response = client.post(
        "/api/chat",
        content=b'{"sender": "web-u1", "message": "\\u597d\\ud800"}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 200
    assert stubs.webhook_calls[0]["message"] == "好"


@pytest.mark.parametrize(
    "sender",
    ["", "a" * 129, "用户一", "web u1", "<script>", "a/b", None, 42],
    ids=["empty", "129-chars", "hanzi", "space", "html", "slash", "null", "number"],
)
def test_chat_rejects_invalid_sender(client: TestClient, stubs: StubServices, sender: object) -> None:
    response = client.post("/api/chat", json={"sender": sender, "message": "你好"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "sender"]
    assert stubs.webhook_calls == []


def test_chat_accepts_sender_of_128_safe_chars(client: TestClient, stubs: StubServices) -> None:
    sender = "web-A_9.x:y@z" + "b" * 115

    response = client.post("/api/chat", json={"sender": sender, "message": "你好"})

    assert response.status_code == 200
    assert stubs.webhook_calls[0]["sender"] == sender


def test_chat_rejects_missing_message(client: TestClient, stubs: StubServices) -> None:
    response = client.post("/api/chat", json={"sender": "web-u1"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "message"]
    assert stubs.webhook_calls == []


def test_chat_rejects_oversized_metadata(client: TestClient, stubs: StubServices) -> None:
    response = post_chat(client, "你好", metadata={"note": "x" * 5000})

    assert response.status_code == 422
    assert stubs.webhook_calls == []


def test_chat_returns_503_list_when_rasa_unreachable(client: TestClient, stubs: StubServices) -> None:
    stubs.rasa_up = False

    response = post_chat(client, "你好")

    assert response.status_code == 503
    assert response.json() == [{"text": UNAVAILABLE_REPLY}]
    assert "稍后再试" in response.json()[0]["text"]


def test_chat_returns_503_list_when_rasa_times_out(client: TestClient, stubs: StubServices) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    stubs.handle = time_out  # type: ignore[method-assign]

    response = post_chat(client, "你好")

    assert response.status_code == 503
    assert response.json() == [{"text": UNAVAILABLE_REPLY}]


@pytest.mark.parametrize("status", [500, 502, 400])
def test_chat_returns_503_list_when_rasa_answers_error_status(
    client: TestClient, stubs: StubServices, status: int
) -> None:
    stubs.rasa_webhook_status = status

    response = post_chat(client, "你好")

    assert response.status_code == 503
    assert response.json() == [{"text": UNAVAILABLE_REPLY}]


@pytest.mark.parametrize(
    "reply",
    [{"text": "not a list"}, ["not a dict"], None, b"<html>Bad Gateway</html>"],
    ids=["dict", "str-item", "null", "not-json"],
)
def test_chat_returns_503_list_when_rasa_reply_is_not_a_message_list(
    client: TestClient, stubs: StubServices, reply: object
) -> None:
    stubs.rasa_reply = reply

    response = post_chat(client, "你好")

    assert response.status_code == 503
    assert response.json() == [{"text": UNAVAILABLE_REPLY}]


def test_chat_passes_through_empty_rasa_reply(client: TestClient, stubs: StubServices) -> None:
    stubs.rasa_reply = []

    response = post_chat(client, "嗯")

    assert response.status_code == 200
    assert response.json() == []


def test_chat_failure_log_hides_message_and_sender(
    client: TestClient, stubs: StubServices, caplog: pytest.LogCaptureFixture
) -> None:
    stubs.rasa_up = False
    caplog.set_level(logging.INFO)

    client.post("/api/chat", json={"sender": "secret-sender-7", "message": "我的手机号是13800138000"})

    chat_records = [r for r in caplog.records if r.name == "api.routes.chat"]
    assert len(chat_records) == 1
    assert "ConnectError" in chat_records[0].getMessage()
    assert "13800138000" not in caplog.text
    assert "secret-sender-7" not in caplog.text
