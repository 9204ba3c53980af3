"""Tests of the hand-off to a person: `/api/handoffs` for staff, and what the customer's chat
(`POST /api/chat`, `GET /api/chat/updates`) does while a case is open and after it is closed.

Cases are opened through `crm_store.handoff.open_handoff`, as the bot's action does, on the real
temporary store the app uses; Rasa is the in-process stub.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from api_stubs import STAFF_ID, STAFF_TOKEN, StaffHeaders, StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from api.deps import get_session_factory
from api.errors import MESSAGES
from api.relay import handoff_words
from crm_store.db import create_engine_for, make_session_factory
from crm_store.handoff import get_handoff, open_handoff, rate_handoff
from crm_store.importer import import_csv_dir
from crm_store.models import AuditLog, HandoffMessage

SENDER = "web-handoff-1"
AUTH = {"Authorization": f"Bearer {STAFF_TOKEN}"}
RATING_BUTTONS = [
    {"title": "5 分 非常满意", "payload": '/rate{"rating":"5"}'},
    {"title": "4 分", "payload": '/rate{"rating":"4"}'},
    {"title": "3 分", "payload": '/rate{"rating":"3"}'},
    {"title": "2 分", "payload": '/rate{"rating":"2"}'},
    {"title": "1 分 很不满意", "payload": '/rate{"rating":"1"}'},
]
# The words the chat shows without Rasa, as the bot's domain has them (bot/domain/handoff.yml).
HOLDING_REPLY = "已收到，人工客服会尽快回复您。"
CLOSING_TEXT = "本次人工服务已结束，感谢您的耐心。方便为这次服务打个分吗？"


def test_the_relays_words_are_the_bots_domain_responses() -> None:
    words = handoff_words()

    assert (words.holding, words.closing) == (HOLDING_REPLY, CLOSING_TEXT)
    # The same buttons as the bot's own rating question (utter_ask_rating).
    assert [dict(button) for button in words.rating_buttons] == RATING_BUTTONS


@pytest.fixture
def crm_engine(database_url: str) -> Iterator[Engine]:
    """The test's own engine on the store file the app uses."""
    engine = create_engine_for(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def store(crm_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(crm_engine)


def open_case(store: sessionmaker[Session], sender: str = SENDER, **extra: Any) -> int:
    """Open a case the way the bot's `action_request_human` does."""
    extra.setdefault(
        "transcript", [{"who": "customer", "text": "我要找人工"}, {"who": "bot", "text": "好的"}]
    )
    with store() as session:
        opening = open_handoff(session, conversation=sender, reason="客户要求", **extra)
        session.commit()
    return opening.case.id


def chat(client: TestClient, message: str, sender: str = SENDER) -> Any:
    return client.post("/api/chat", json={"sender": sender, "message": message})


def updates(client: TestClient, sender: str = SENDER) -> Any:
    return client.get("/api/chat/updates", params={"sender": sender})


def transcript(store: sessionmaker[Session], case_id: int) -> list[tuple[str, str]]:
    with store() as session:
        case = get_handoff(session, case_id=case_id)
    assert case is not None
    return [(entry.who, entry.text) for entry in case.transcript]


# --- the customer's chat while a case is open --------------------------------------------------


def test_chat_while_case_open_is_recorded_not_forwarded(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)

    response = chat(client, "人呢？还在吗")

    assert response.status_code == 200
    assert response.json() == [{"recipient_id": SENDER, "text": HOLDING_REPLY}]
    assert stubs.webhook_calls == []
    assert transcript(store, case_id)[-1] == ("customer", "人呢？还在吗")


def test_chat_of_another_conversation_still_reaches_rasa(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    open_case(store)

    response = chat(client, "你好", sender="web-someone-else")

    assert response.json() == stubs.rasa_reply
    assert [call["sender"] for call in stubs.webhook_calls] == ["web-someone-else"]


def test_chat_while_case_open_answers_with_waiting_staff_reply(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/reply", json={"text": "您好，我是客服，正在查询"}, headers=AUTH)

    response = chat(client, "好的谢谢")

    assert response.json() == [{"recipient_id": SENDER, "text": "您好，我是客服，正在查询"}]
    assert stubs.webhook_calls == []
    assert updates(client).json() == []


def test_chat_ignores_empty_message_while_case_open(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)

    chat(client, "  ")

    assert transcript(store, case_id)[-1] == ("bot", "好的")
    assert stubs.webhook_calls == []


# --- staff endpoints ----------------------------------------------------------------------------


def test_staff_list_shows_open_cases_with_customer_ticket_and_transcript(
    client: TestClient, store: sessionmaker[Session], demo_dir: Path
) -> None:
    report = import_csv_dir(store, demo_dir)
    assert report.ok
    first = open_case(store, "web-first", customer_id="C0001", ticket_id="T09001")
    second = open_case(store, "web-second")
    closed = open_case(store, "web-closed")
    client.post(f"/api/handoffs/{closed}/close", headers=AUTH)
    chat(client, "我的手机号 13800001111", sender="web-first")

    response = client.get("/api/handoffs", headers=AUTH)

    assert response.status_code == 200
    cases = response.json()
    assert [case["id"] for case in cases] == [first, second]
    case = cases[0]
    assert case["sender_id"] == "web-first"
    assert case["customer_id"] == "C0001"
    assert case["ticket_id"] == "T09001"
    assert case["reason"] == "客户要求"
    assert case["status"] == "open"
    assert case["opened_at"].endswith("+08:00")
    assert [(e["who"], e["text"]) for e in case["transcript"]] == [
        ("customer", "我要找人工"),
        ("bot", "好的"),
        # Staff see the customer's own words, phone included.
        ("customer", "我的手机号 13800001111"),
    ]
    assert all(e["at"] for e in case["transcript"])


def test_staff_list_is_empty_without_cases(client: TestClient) -> None:
    response = client.get("/api/handoffs", headers=AUTH)

    assert response.status_code == 200
    assert response.json() == []


def test_staff_reply_is_queued_and_added_to_transcript(
    client: TestClient, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)

    response = client.post(
        f"/api/handoffs/{case_id}/reply", json={"text": " 您好\x00，我是客服小周\r\n请稍等 "}, headers=AUTH
    )

    assert response.status_code == 201
    body = response.json()
    assert body["case_id"] == case_id
    assert body["text"] == "您好，我是客服小周\n请稍等"
    assert body["delivered_at"] is None
    assert body["created_at"].endswith("+08:00")
    assert transcript(store, case_id)[-1] == ("staff", "您好，我是客服小周\n请稍等")
    with store() as session:
        actors = session.execute(select(AuditLog.action, AuditLog.actor_role, AuditLog.actor_id)).all()
    # Personal sign-in: the reply is audited with the employee who wrote it.
    assert ("handoff_reply", "staff", STAFF_ID) in actors


def test_updates_delivers_a_staff_reply_exactly_once(
    client: TestClient, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/reply", json={"text": "第一条"}, headers=AUTH)
    client.post(f"/api/handoffs/{case_id}/reply", json={"text": "第二条"}, headers=AUTH)

    first = updates(client)
    second = updates(client)

    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    assert first.json() == [
        {"recipient_id": SENDER, "text": "第一条"},
        {"recipient_id": SENDER, "text": "第二条"},
    ]
    assert second.json() == []
    assert updates(client, "web-someone-else").json() == []
    with store() as session:
        assert all(m.delivered_at is not None for m in session.scalars(select(HandoffMessage)))


def test_updates_is_empty_without_any_case(client: TestClient, stubs: StubServices) -> None:
    response = updates(client, "web-nobody")

    assert response.status_code == 200
    assert response.json() == []
    assert stubs.webhook_calls == []


@pytest.mark.parametrize("sender", ["", "a" * 129, "用户一", "a/b"], ids=["empty", "129", "hanzi", "slash"])
def test_updates_rejects_invalid_sender(client: TestClient, sender: str) -> None:
    response = updates(client, sender)

    assert response.status_code == 422


def test_close_sends_closing_message_with_rating_buttons_and_resumes_bot(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/reply", json={"text": "已为您处理好了"}, headers=AUTH)

    response = client.post(f"/api/handoffs/{case_id}/close", headers=AUTH)

    assert response.status_code == 200
    closed = response.json()
    assert closed["id"] == case_id
    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None
    assert closed["transcript"][-1]["text"] == CLOSING_TEXT
    assert updates(client).json() == [
        {"recipient_id": SENDER, "text": "已为您处理好了"},
        {"recipient_id": SENDER, "text": CLOSING_TEXT, "buttons": RATING_BUTTONS},
    ]
    assert updates(client).json() == []
    assert client.get("/api/handoffs", headers=AUTH).json() == []

    rated = chat(client, '/rate{"rating":"5"}')

    assert rated.json() == stubs.rasa_reply
    assert [call["message"] for call in stubs.webhook_calls] == ['/rate{"rating":"5"}']
    with store() as session:
        actors = session.execute(select(AuditLog.action, AuditLog.actor_id)).all()
    assert ("close_handoff", STAFF_ID) in actors


def test_closing_message_not_yet_polled_comes_before_rasa_reply(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/close", headers=AUTH)

    response = chat(client, "我还想查个订单")

    assert response.status_code == 200
    assert response.json() == [
        {"recipient_id": SENDER, "text": CLOSING_TEXT, "buttons": RATING_BUTTONS},
        *stubs.rasa_reply,
    ]
    assert [call["message"] for call in stubs.webhook_calls] == ["我还想查个订单"]
    assert updates(client).json() == []


def test_closing_message_still_arrives_when_rasa_is_down(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/close", headers=AUTH)
    stubs.rasa_up = False

    response = chat(client, "你好")

    assert response.status_code == 503
    assert [m["text"] for m in response.json()] == [CLOSING_TEXT, "抱歉，小助手暂时无法回复，请稍后再试。"]


def test_closing_message_of_a_rated_case_has_no_buttons(
    client: TestClient, store: sessionmaker[Session]
) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/close", headers=AUTH)
    with store() as session:
        rate_handoff(session, case_id=case_id, rating=4)
        session.commit()

    assert updates(client).json() == [{"recipient_id": SENDER, "text": CLOSING_TEXT}]


def test_a_new_case_after_closing_pauses_the_bot_again(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    first = open_case(store)
    client.post(f"/api/handoffs/{first}/close", headers=AUTH)
    updates(client)
    second = open_case(store)

    response = chat(client, "又是我")

    assert second != first
    assert response.json() == [{"recipient_id": SENDER, "text": HOLDING_REPLY}]
    assert stubs.webhook_calls == []


def test_reply_to_closed_case_is_409(client: TestClient, store: sessionmaker[Session]) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/close", headers=AUTH)

    reply = client.post(f"/api/handoffs/{case_id}/reply", json={"text": "还在吗"}, headers=AUTH)
    close_again = client.post(f"/api/handoffs/{case_id}/close", headers=AUTH)

    assert reply.status_code == 409
    assert reply.json() == {"detail": f"转人工会话 {case_id} 已结束"}
    assert close_again.status_code == 409
    # Closing twice queues the closing message once.
    with store() as session:
        texts = session.scalars(select(HandoffMessage.text)).all()
    assert texts == [CLOSING_TEXT]


@pytest.mark.parametrize("action", ["reply", "close"])
def test_unknown_case_is_404(client: TestClient, action: str) -> None:
    response = client.post(f"/api/handoffs/999/{action}", json={"text": "您好"}, headers=AUTH)

    assert response.status_code == 404
    assert response.json() == {"detail": "转人工会话 999 不存在"}


@pytest.mark.parametrize("case_id", ["0", "-1", "abc", str(2**63)])
def test_malformed_case_id_is_422(client: TestClient, case_id: str) -> None:
    response = client.post(f"/api/handoffs/{case_id}/close", headers=AUTH)

    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ""}, {"text": "   \n"}, {"text": "\x00\x07"}, {"text": "好" * 2001}, {"text": 42}],
    ids=["missing", "empty", "blank", "control-only", "2001-chars", "number"],
)
def test_reply_rejects_invalid_text(client: TestClient, store: sessionmaker[Session], body: Any) -> None:
    case_id = open_case(store)

    response = client.post(f"/api/handoffs/{case_id}/reply", json=body, headers=AUTH)

    assert response.status_code == 422
    assert transcript(store, case_id)[-1] == ("bot", "好的")


def test_reply_accepts_2000_chars(client: TestClient, store: sessionmaker[Session]) -> None:
    case_id = open_case(store)

    response = client.post(f"/api/handoffs/{case_id}/reply", json={"text": "好" * 2000}, headers=AUTH)

    assert response.status_code == 201


# --- authentication -----------------------------------------------------------------------------

STAFF_CALLS = [("GET", "/api/handoffs"), ("POST", "/api/handoffs/1/reply"), ("POST", "/api/handoffs/1/close")]


@pytest.mark.parametrize(("method", "path"), STAFF_CALLS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {STAFF_TOKEN}x"},
        {"Authorization": f"Basic {STAFF_TOKEN}"},
        {"Authorization": STAFF_TOKEN},
        {"Authorization": "Bearer 令牌"},
    ],
    ids=["missing", "wrong", "longer", "basic-scheme", "no-scheme", "non-ascii"],
)
def test_staff_endpoints_refuse_missing_or_wrong_token(
    client: TestClient, store: sessionmaker[Session], method: str, path: str, headers: dict[str, str]
) -> None:
    case_id = open_case(store)
    assert case_id == 1
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}

    response = client.request(method, path, json={"text": "您好"}, headers=encoded)  # type: ignore[arg-type]

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] in {MESSAGES["token_missing"], MESSAGES["token_invalid"]}
    assert STAFF_TOKEN not in response.text
    assert transcript(store, case_id) == [("customer", "我要找人工"), ("bot", "好的")]
    with store() as session:
        case = get_handoff(session, case_id=case_id)
    assert case is not None
    assert case.is_open


@pytest.mark.parametrize(("method", "path"), STAFF_CALLS)
def test_a_salesperson_may_not_handle_handoffs(
    client: TestClient, store: sessionmaker[Session], staff_headers: StaffHeaders, method: str, path: str
) -> None:
    case_id = open_case(store)
    sales = staff_headers("E70", role="sales")

    response = client.request(method, path, json={"text": "您好"}, headers=sales)

    assert response.status_code == 403
    assert transcript(store, case_id) == [("customer", "我要找人工"), ("bot", "好的")]


def test_a_service_agent_replies_and_closes_in_their_own_name(
    client: TestClient, store: sessionmaker[Session], staff_headers: StaffHeaders
) -> None:
    case_id = open_case(store)
    agent = staff_headers("E71", role="service", name="客服小周")

    replied = client.post(f"/api/handoffs/{case_id}/reply", json={"text": "您好"}, headers=agent)
    closed = client.post(f"/api/handoffs/{case_id}/close", headers=agent)

    assert (replied.status_code, closed.status_code) == (201, 200)
    with store() as session:
        actors = session.execute(
            select(AuditLog.action, AuditLog.actor_id).where(AuditLog.entity == "handoff_case")
        ).all()
    assert ("handoff_reply", "E71") in actors
    assert ("close_handoff", "E71") in actors


def test_openapi_documents_handoffs_with_bearer_auth(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    assert {"/api/handoffs", "/api/handoffs/{case_id}/reply", "/api/handoffs/{case_id}/close"} <= set(
        schema["paths"]
    )
    assert "/api/chat/updates" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/api/handoffs"]["get"]["tags"] == ["handoffs"]


# --- store failures -----------------------------------------------------------------------------


def test_chat_reaches_rasa_when_the_store_fails(
    app: FastAPI, client: TestClient, stubs: StubServices, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A store without tables: every query fails the way a broken database would.
    broken = create_engine_for(f"sqlite:///{tmp_path / 'empty.db'}")
    app.dependency_overrides[get_session_factory] = lambda: make_session_factory(broken)
    try:
        response = chat(client, "你好")
        polled = updates(client)
    finally:
        broken.dispose()

    assert response.status_code == 200
    assert response.json() == stubs.rasa_reply
    assert polled.status_code == 503
    assert polled.json() == []
    assert "forwarding to Rasa" in caplog.text
    assert SENDER not in caplog.text


def test_concurrent_polls_deliver_a_reply_once(client: TestClient, store: sessionmaker[Session]) -> None:
    case_id = open_case(store)
    client.post(f"/api/handoffs/{case_id}/reply", json={"text": "只说一次"}, headers=AUTH)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: updates(client), range(16)))

    assert all(r.status_code == 200 for r in results)
    assert sum(len(r.json()) for r in results) == 1


def test_chat_page_polls_for_staff_replies(client: TestClient) -> None:
    script = client.get("/static/chat.js").text

    assert "/api/chat/updates?sender=" in script
    assert "visibilitychange" in script


def test_concurrent_closes_close_once(client: TestClient, store: sessionmaker[Session]) -> None:
    case_id = open_case(store)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda _: client.post(f"/api/handoffs/{case_id}/close", headers=AUTH), range(4))
        )

    assert sorted(r.status_code for r in results) == [200, 409, 409, 409]
    with store() as session:
        assert session.scalars(select(HandoffMessage.text)).all() == [CLOSING_TEXT]
