"""The web widget's Socket.IO channel (api/channels/socketio.py), spoken by python-socketio's own client.

The real API runs under uvicorn on a free loopback port (in this process, so that the test's
settings are the app's through its own seam, `dependency_overrides[api_settings]`), on a
fresh migrated SQLite store; Rasa is the stub of api_stubs.py served over real HTTP on loopback
(`loopback_rasa`), so what the gateway forwarded is asserted on exactly.

The client is python-socketio's `Client` on the long-polling transport: its `AsyncClient` needs
aiohttp and its websocket transport websocket-client, neither of which the app's lock has; the
protocol above the transport (session_request, user_uttered, bot_uttered) is the same.
"""

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import socketio
import uvicorn
from api_stubs import STAFF_ID, STAFF_TOKEN, StubServices, loopback_rasa
from sqlalchemy.orm import Session, sessionmaker

from api.deps import api_settings
from api.gateway import EMPTY_MESSAGE_REPLY, TOO_LONG_REPLY, UNAVAILABLE_REPLY
from api.main import create_app
from crm_store.db import create_engine_for, make_session_factory
from crm_store.handoff import open_handoff
from crm_store.settings import ApiSettings

WAIT_S = 15.0
PUSH_INTERVAL_S = 0.2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def api_url(
    database_url: str, stubs: StubServices, settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The API under uvicorn on loopback, its Rasa the loopback stub, pushes every 0.2 s."""
    del database_url  # in the environment for create_app's lifespan
    monkeypatch.setenv("KNOWLEDGE_WARM_UP", "false")
    with loopback_rasa(stubs) as rasa_url:
        served = settings.model_copy(
            update={"rasa_url": rasa_url, "socketio_push_interval_s": PUSH_INTERVAL_S}
        )
        app = create_app()
        app.dependency_overrides[api_settings] = lambda: served
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
        )
        thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the API did not start under uvicorn")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)


@dataclass
class Widget:
    """A web widget's side of the protocol: what the server emitted, in order."""

    client: socketio.Client
    confirmed: "queue.Queue[Any]"
    uttered: "queue.Queue[Any]"

    def start_session(self, session_id: str | None = None) -> str:
        self.client.emit("session_request", {"session_id": session_id})
        confirmed = self.confirmed.get(timeout=WAIT_S)
        assert isinstance(confirmed, str)
        return confirmed

    def say(self, message: str, session_id: str, custom_data: dict[str, Any] | None = None) -> None:
        self.client.emit(
            "user_uttered", {"message": message, "session_id": session_id, "customData": custom_data}
        )

    def replies(self, count: int) -> list[Any]:
        return [self.uttered.get(timeout=WAIT_S) for _ in range(count)]

    def nothing_more(self, wait_s: float = 0.5) -> bool:
        try:
            extra = self.uttered.get(timeout=wait_s)
        except queue.Empty:
            return True
        pytest.fail(f"an unexpected bot_uttered: {extra!r}")


@pytest.fixture
def widget(api_url: str) -> Iterator[Callable[..., Widget]]:
    """`widget(auth=None)`: a connected python-socketio client of the API's /socket.io."""
    clients: list[socketio.Client] = []

    def connect(auth: dict[str, Any] | None = None) -> Widget:
        client = socketio.Client(reconnection=False)
        confirmed: queue.Queue[Any] = queue.Queue()
        uttered: queue.Queue[Any] = queue.Queue()
        client.on("session_confirm", confirmed.put)
        client.on("bot_uttered", uttered.put)
        client.connect(
            api_url, socketio_path="/socket.io", transports=["polling"], auth=auth, wait_timeout=WAIT_S
        )
        clients.append(client)
        return Widget(client, confirmed, uttered)

    try:
        yield connect
    finally:
        for client in clients:
            # Sends the close packet without waiting for the pending long-poll to time out (25 s).
            client.eio.disconnect(abort=True)


def test_session_request_is_confirmed_with_the_session_id(widget: Callable[..., Widget]) -> None:
    chat = widget()

    assert chat.start_session("widget-session-1") == "widget-session-1"
    fresh = chat.start_session(None)
    assert len(fresh) == 32 and fresh != "widget-session-1"


def test_a_staff_session_id_is_refused(widget: Callable[..., Widget]) -> None:
    chat = widget()

    confirmed = chat.start_session(f"staff:{STAFF_ID}:web-1")

    assert not confirmed.lower().startswith("staff:")


def test_an_order_question_gets_rasas_answer_with_buttons_as_quick_replies(
    widget: Callable[..., Widget], stubs: StubServices
) -> None:
    chat = widget()
    session_id = chat.start_session("widget-order-1")

    chat.say("我的订单 SO202611180001 到哪了？", session_id)

    assert chat.replies(3) == [
        {"text": "您好，我是小助手～"},
        {
            "text": "请选择：",
            "quick_replies": [{"content_type": "text", "title": "查订单", "payload": "/check_order_status"}],
        },
        {"chart": {"type": "bar"}},  # a custom payload without `data` goes out whole
    ]
    assert stubs.webhook_calls == [
        {
            "sender": "widget-order-1",
            "message": "我的订单 SO202611180001 到哪了？",
            "metadata": {"channel": "socketio", "role": "customer", "principal_id": None},
        }
    ]


def test_images_paragraphs_and_custom_data_in_rasas_socketio_shape(
    widget: Callable[..., Widget], stubs: StubServices
) -> None:
    stubs.rasa_reply = [
        {"recipient_id": "s", "text": "第一段\n\n第二段"},
        {"recipient_id": "s", "image": "https://example.test/a.png"},
        {"recipient_id": "s", "custom": {"data": {"kind": "card"}}},
    ]
    chat = widget()
    session_id = chat.start_session("widget-shapes-1")

    chat.say("看看", session_id)

    assert chat.replies(4) == [
        {"text": "第一段"},
        {"text": "第二段"},
        {"attachment": {"type": "image", "payload": {"src": "https://example.test/a.png"}}},
        {"kind": "card"},
    ]


def test_a_staff_token_in_custom_data_stamps_the_tokens_role(
    widget: Callable[..., Widget], stubs: StubServices
) -> None:
    chat = widget()
    session_id = chat.start_session("widget-staff-1")

    chat.say("今天有哪些待办", session_id, {"token": STAFF_TOKEN, "page": "widget"})
    chat.replies(3)

    assert stubs.webhook_calls == [
        {
            "sender": f"staff:{STAFF_ID}:widget-staff-1",
            "message": "今天有哪些待办",
            # The token itself never reaches Rasa or its tracker store.
            "metadata": {"page": "widget", "channel": "socketio", "role": "admin", "principal_id": STAFF_ID},
        }
    ]


def test_a_staff_token_in_the_auth_dict_stamps_the_tokens_role(
    widget: Callable[..., Widget], stubs: StubServices
) -> None:
    chat = widget(auth={"token": STAFF_TOKEN})
    session_id = chat.start_session("widget-staff-2")

    chat.say("你好", session_id)
    chat.replies(3)

    assert stubs.webhook_calls[0]["sender"] == f"staff:{STAFF_ID}:widget-staff-2"
    assert stubs.webhook_calls[0]["metadata"]["role"] == "admin"


def test_a_forged_role_in_custom_data_is_ignored(widget: Callable[..., Widget], stubs: StubServices) -> None:
    chat = widget()
    session_id = chat.start_session("widget-forged-1")

    chat.say("查一下客户", session_id, {"role": "manager", "principal_id": "E001", "channel": "wechat"})
    chat.replies(3)

    assert stubs.webhook_calls[0]["sender"] == "widget-forged-1"
    assert stubs.webhook_calls[0]["metadata"] == {
        "channel": "socketio",
        "role": "customer",
        "principal_id": None,
    }


def test_an_invalid_token_is_refused_not_made_a_customer(
    widget: Callable[..., Widget], stubs: StubServices
) -> None:
    chat = widget()
    session_id = chat.start_session("widget-bad-token")

    chat.say("你好", session_id, {"token": "not-a-token"})

    assert chat.replies(1) == [{"text": "登录状态无效，请重新登录"}]
    assert stubs.webhook_calls == []
    with pytest.raises(socketio.exceptions.ConnectionError):
        widget(auth={"token": "not-a-token"})


def test_empty_and_over_long_messages_get_the_polite_replies(
    widget: Callable[..., Widget], stubs: StubServices
) -> None:
    chat = widget()
    session_id = chat.start_session("widget-limits-1")

    chat.say("  \n ", session_id)
    assert chat.replies(1) == [{"text": EMPTY_MESSAGE_REPLY}]
    chat.say("好" * 3000, session_id)
    assert chat.replies(1) == [{"text": TOO_LONG_REPLY.format(limit=2000)}]
    assert stubs.webhook_calls == []


def test_rasa_down_answers_the_polite_apology(widget: Callable[..., Widget], stubs: StubServices) -> None:
    stubs.rasa_up = False
    chat = widget()
    session_id = chat.start_session("widget-down-1")

    chat.say("你好", session_id)

    assert chat.replies(1) == [{"text": UNAVAILABLE_REPLY}]


def test_a_staff_reply_to_an_open_handoff_is_pushed_unasked(
    widget: Callable[..., Widget], stubs: StubServices, database_url: str, api_url: str
) -> None:
    engine = create_engine_for(database_url)
    try:
        store: sessionmaker[Session] = make_session_factory(engine)
        with store() as session:
            case = open_handoff(
                session, conversation="widget-handoff-1", reason="客户要求", transcript=[]
            ).case
            session.commit()
            case_id = case.id
    finally:
        engine.dispose()
    chat = widget()
    chat.start_session("widget-handoff-1")

    reply = httpx.post(
        f"{api_url}/api/handoffs/{case_id}/reply",
        json={"text": "您好，我是客服小周"},
        headers={"Authorization": f"Bearer {STAFF_TOKEN}"},
        timeout=WAIT_S,
    )
    assert reply.status_code == 201, reply.text

    assert chat.replies(1) == [{"text": "您好，我是客服小周"}]
    assert chat.nothing_more(wait_s=4 * PUSH_INTERVAL_S)  # shown once
    assert stubs.webhook_calls == []


def test_a_page_of_another_site_cannot_open_the_channel(api_url: str, stubs: StubServices) -> None:
    # CRM_SOCKETIO_CORS_ORIGINS is empty: only pages the API serves itself (the /widget page) may connect.
    foreign = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        foreign.connect(
            api_url,
            socketio_path="/socket.io",
            transports=["polling"],
            headers={"Origin": "https://evil.example"},
            wait_timeout=WAIT_S,
        )
    assert stubs.webhook_calls == []

    own = socketio.Client(reconnection=False)
    own.connect(
        api_url,
        socketio_path="/socket.io",
        transports=["polling"],
        headers={"Origin": api_url},
        wait_timeout=WAIT_S,
    )
    try:
        assert own.connected
    finally:
        own.eio.disconnect(abort=True)
