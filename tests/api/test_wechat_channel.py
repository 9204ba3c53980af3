"""The WeChat Official Account channel, called as WeChat calls it.

Callbacks are built with wechatpy's own signer and crypto (`WeChatSigner`, `WeChatCrypto.encrypt_message`),
Rasa is the in-process stub of `api_stubs`, and the customer-service message API is a real HTTP
server on loopback that records every request (`tests.wechat_api`).
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pytest
import xmltodict
from api_stubs import StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from api.channels.text_replies import MAX_TEXT_BYTES, ButtonChoices, split_message
from api.channels.wechat import (
    NOT_LINKED_REPLY,
    UNLINKED_REPLY,
    UNSUPPORTED_REPLY,
    WELCOME_REPLY,
    push_staff_replies,
)
from api.deps import get_http_client
from api.gateway import TOO_LONG_REPLY
from crm_store.access import CUSTOMER
from crm_store.audit import audit
from crm_store.db import make_session_factory
from crm_store.handoff import add_staff_reply, open_handoff
from crm_store.models import Customer, WechatLink
from crm_store.privacy import conversation_key
from crm_store.settings import ApiSettings, WechatSettings, get_wechat_settings
from crm_store.vocab import HANDOFF_REASON_ASKED
from tests.wechat_api import SEND_PATH, FakeWechatApi, running_wechat_api, sent_texts

TOKEN = "wx-callback-token-7c1e"
APP_ID = "wx1234567890abcdef"
APP_SECRET = "wx-app-secret-not-for-production"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat makes them
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
ACCOUNT = "gh_0123456789ab"
URL = "/channels/wechat"


class Answer(Protocol):
    """What the test client answers (its own copy of httpx's Response)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...


@pytest.fixture
def wechat_api() -> Iterator[FakeWechatApi]:
    with running_wechat_api() as fake:
        yield fake


@dataclass
class Slow:
    """Seconds each call to Rasa waits before the stub answers (0: at once)."""

    delay_s: float = 0.0


@pytest.fixture
def slow() -> Slow:
    return Slow()


def _settings(wechat_api: FakeWechatApi, **changes: Any) -> WechatSettings:
    values: dict[str, Any] = {
        "token": SecretStr(TOKEN),
        "app_id": APP_ID,
        "app_secret": SecretStr(APP_SECRET),
        "aes_key": None,
        "api_base": wechat_api.base,
        "reply_budget_s": 2.0,
        **changes,
    }
    return WechatSettings(**values)


@pytest.fixture
def wechat_settings(wechat_api: FakeWechatApi) -> dict[str, WechatSettings]:
    """The settings the app reads, in a box a test may change before its calls."""
    return {"now": _settings(wechat_api)}


@pytest.fixture
def wechat_client(
    app: FastAPI, stubs: StubServices, slow: Slow, wechat_settings: dict[str, WechatSettings]
) -> Iterator[TestClient]:
    async def handle(request: httpx.Request) -> httpx.Response:
        if slow.delay_s:
            await asyncio.sleep(slow.delay_s)
        return stubs.handle(request)

    async def http_client() -> AsyncIterator[httpx.AsyncClient]:
        # Not closed with the request: a late turn still uses it after the callback was answered.
        yield httpx.AsyncClient(transport=httpx.MockTransport(handle))

    app.dependency_overrides[get_http_client] = http_client
    app.dependency_overrides[get_wechat_settings] = lambda: wechat_settings["now"]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _signed(timestamp: str, nonce: str) -> dict[str, str]:
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, nonce)
    return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce}


def _xml(msg_type: str, msg_id: int | None = None, openid: str = OPENID, **fields: str) -> str:
    parts = [
        f"<ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>",
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime>",
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>",
        *(f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items()),
    ]
    if msg_id is not None:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    return "<xml>" + "".join(parts) + "</xml>"


_counter = iter(range(10**6))


def _post(client: TestClient, xml: str, **params: str) -> Answer:
    nonce = f"n{next(_counter)}"
    return client.post(
        URL,
        params={**_signed(str(int(time.time())), nonce), **params},
        content=xml.encode(),
        headers={"Content-Type": "text/xml"},
    )


def _reply_text(response: Answer) -> str:
    assert response.status_code == 200, response.text
    reply = xmltodict.parse(response.text)["xml"]
    assert (reply["ToUserName"], reply["FromUserName"], reply["MsgType"]) == (OPENID, ACCOUNT, "text")
    return str(reply["Content"])


def _text_message(content: str, msg_id: int) -> str:
    return _xml("text", msg_id, Content=content)


BOT_TEXT = "您好，我是小助手～\n请选择：\n回复 1 查订单"


def test_echostr_verification(wechat_client: TestClient) -> None:
    good = wechat_client.get(URL, params={**_signed("1733540000", "abc"), "echostr": "4711"})
    assert (good.status_code, good.text) == (200, "4711")
    bad = wechat_client.get(
        URL, params={**_signed("1733540000", "abc"), "signature": "0" * 40, "echostr": "1"}
    )
    assert bad.status_code == 403
    assert "4711" not in bad.text


def test_plain_text_turn_reaches_rasa_as_the_follower(wechat_client: TestClient, stubs: StubServices) -> None:
    assert _reply_text(_post(wechat_client, _text_message("我的订单到哪了", 1001))) == BOT_TEXT
    (call,) = stubs.webhook_calls
    assert call["sender"] == f"wechat:{OPENID}"
    assert call["message"] == "我的订单到哪了"
    assert call["metadata"]["channel"] == "wechat"
    assert call["metadata"]["role"] == "customer"
    assert call["metadata"]["principal_id"] is None


def test_a_numbered_reply_sends_the_buttons_payload(wechat_client: TestClient, stubs: StubServices) -> None:
    _post(wechat_client, _text_message("你好", 1101))
    _post(wechat_client, _text_message("1", 1102))
    assert [c["message"] for c in stubs.webhook_calls] == ["你好", "/check_order_status"]


def test_bad_signature_is_refused(wechat_client: TestClient, stubs: StubServices) -> None:
    response = _post(wechat_client, _text_message("你好", 1002), signature="f" * 40)
    assert response.status_code == 403
    assert stubs.webhook_calls == []


def test_off_without_a_token(
    wechat_client: TestClient, wechat_settings: dict[str, WechatSettings], wechat_api: FakeWechatApi
) -> None:
    wechat_settings["now"] = _settings(wechat_api, token=None)
    assert wechat_client.get(URL, params={**_signed("1", "2"), "echostr": "x"}).status_code == 404
    assert _post(wechat_client, _text_message("你好", 1003)).status_code == 404


def test_aes_safe_mode(
    wechat_client: TestClient,
    wechat_settings: dict[str, WechatSettings],
    wechat_api: FakeWechatApi,
    stubs: StubServices,
) -> None:
    wechat_settings["now"] = _settings(wechat_api, aes_key=SecretStr(AES_KEY))
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    timestamp, nonce = str(int(time.time())), "aesnonce"
    encrypted = crypto.encrypt_message(_text_message("查订单", 1004), nonce, timestamp)
    msg_signature = xmltodict.parse(encrypted)["xml"]["MsgSignature"]
    params = {**_signed(timestamp, nonce), "encrypt_type": "aes", "msg_signature": msg_signature}
    response = wechat_client.post(URL, params=params, content=encrypted.encode())
    assert response.status_code == 200, response.text
    sealed = xmltodict.parse(response.text)["xml"]
    assert "Content" not in sealed and BOT_TEXT not in response.text
    plain = crypto.decrypt_message(
        response.text, sealed["MsgSignature"], sealed["TimeStamp"], sealed["Nonce"]
    )
    assert xmltodict.parse(plain)["xml"]["Content"] == BOT_TEXT
    assert [c["message"] for c in stubs.webhook_calls] == ["查订单"]

    # A forged msg_signature, and a plaintext callback while safe mode is on.
    forged = wechat_client.post(URL, params={**params, "msg_signature": "0" * 40}, content=encrypted.encode())
    assert forged.status_code == 403
    assert _post(wechat_client, _text_message("明文", 1005)).status_code == 400
    assert len(stubs.webhook_calls) == 1


def test_voice_recognition_and_menu_click(wechat_client: TestClient, stubs: StubServices) -> None:
    voice = _xml("voice", 1006, MediaId="m1", Format="amr", Recognition="退货怎么办")
    assert _reply_text(_post(wechat_client, voice)) == BOT_TEXT
    click = _xml("event", Event="CLICK", EventKey="我的订单")
    assert _reply_text(_post(wechat_client, click)) == BOT_TEXT
    assert [c["message"] for c in stubs.webhook_calls] == ["退货怎么办", "我的订单"]


def test_unsupported_types_get_a_polite_reply(wechat_client: TestClient, stubs: StubServices) -> None:
    image = _xml("image", 1007, PicUrl="http://example.invalid/a.jpg", MediaId="m2")
    assert _reply_text(_post(wechat_client, image)) == UNSUPPORTED_REPLY
    unrecognised = _xml("voice", 1008, MediaId="m3", Format="amr")
    assert _reply_text(_post(wechat_client, unrecognised)) == UNSUPPORTED_REPLY
    assert _reply_text(_post(wechat_client, _xml("event", Event="subscribe"))) == WELCOME_REPLY
    unsubscribe = _post(wechat_client, _xml("event", openid="oOther", Event="unsubscribe"))
    assert (unsubscribe.status_code, unsubscribe.text) == (200, "success")
    assert stubs.webhook_calls == []


@pytest.mark.parametrize(
    "body", ["<xml><ToUserName>", "not xml at all", "<xml><Content>x</Content></xml>", ""]
)
def test_malformed_xml_is_400_without_a_trace(
    wechat_client: TestClient, body: str, stubs: StubServices
) -> None:
    response = _post(wechat_client, body)
    assert response.status_code == 400
    assert "Traceback" not in response.text and "Error" not in response.text
    assert stubs.webhook_calls == []


def test_a_3000_character_message_gets_the_polite_limit(
    wechat_client: TestClient, stubs: StubServices
) -> None:
    assert _reply_text(_post(wechat_client, _text_message("好" * 3000, 1009))) == TOO_LONG_REPLY.format(
        limit=2000
    )
    assert stubs.webhook_calls == []


def test_a_replayed_msgid_reaches_rasa_once(wechat_client: TestClient, stubs: StubServices) -> None:
    xml = _text_message("你好", 1010)
    assert _reply_text(_post(wechat_client, xml)) == BOT_TEXT
    again = _post(wechat_client, xml)
    assert (again.status_code, again.text) == (200, "success")
    assert len(stubs.webhook_calls) == 1


def test_a_slow_turn_answers_success_then_a_customer_service_message(
    wechat_client: TestClient,
    wechat_settings: dict[str, WechatSettings],
    wechat_api: FakeWechatApi,
    slow: Slow,
    stubs: StubServices,
) -> None:
    wechat_settings["now"] = _settings(wechat_api, reply_budget_s=0.2)
    slow.delay_s = 0.6
    for msg_id, text in ((1011, "查订单"), (1012, "投诉")):
        started = time.monotonic()
        response = _post(wechat_client, _text_message(text, msg_id))
        assert (response.status_code, response.text) == (200, "success")
        # TestClient waits for the background delivery too; a real server answers before it.
        assert time.monotonic() - started >= slow.delay_s
    assert [c["message"] for c in stubs.webhook_calls] == ["查订单", "投诉"]
    token_calls = [c for c in wechat_api.calls if c[1] == "/cgi-bin/token"]
    sends = [c for c in wechat_api.calls if c[1] == "/cgi-bin/message/custom/send"]
    assert len(token_calls) == 1  # cached for the second message
    assert token_calls[0][2] == {
        "grant_type": ["client_credential"],
        "appid": [APP_ID],
        "secret": [APP_SECRET],
    }
    assert len(sends) == 2
    for _method, _path, query, body in sends:
        assert query["access_token"] == ["ACCESS-1"]
        assert body == {"touser": OPENID, "msgtype": "text", "text": {"content": BOT_TEXT}}


@pytest.mark.parametrize("sender", [f"wechat:{OPENID}", f"WeChat:{OPENID}", "wechat:"])
def test_a_web_client_may_not_continue_a_followers_conversation(
    wechat_client: TestClient, stubs: StubServices, sender: str
) -> None:
    # A linked follower's session starts verified (actions/identity.py): its id is the channel's own.
    response = wechat_client.post("/api/chat", json={"sender": sender, "message": "我的订单"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "sender"]
    assert "wechat:" in response.json()["detail"][0]["msg"]
    assert stubs.webhook_calls == []


def test_split_message_keeps_every_character_within_the_byte_limit() -> None:
    lines = ["订单SO202611180001：运输中，顺丰速运 SF1234567890。"] * 60 + ["长" * 1000]
    text = "\n".join(lines)

    parts = split_message(text)

    assert all(len(part.encode()) <= MAX_TEXT_BYTES for part in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    # Cut between lines where a line fits: every part but the last ends with a whole line.
    assert all(part.endswith("。") for part in parts[:2])
    assert split_message("") == [""]


def test_a_long_answer_is_the_passive_reply_then_customer_service_messages(
    wechat_client: TestClient, wechat_api: FakeWechatApi, stubs: StubServices
) -> None:
    paragraph = "您的订单已经发出，预计两天内送达，请留意快递员的电话。"
    stubs.rasa_reply = [{"recipient_id": "u-1", "text": paragraph} for _ in range(60)]

    first = _reply_text(_post(wechat_client, _text_message("我的订单到哪了", 1013)))

    sends = [c for c in wechat_api.calls if c[1] == "/cgi-bin/message/custom/send"]
    rest = [body["text"]["content"] for _method, _path, _query, body in sends]
    assert len(first.encode()) <= MAX_TEXT_BYTES
    assert rest and all(len(text.encode()) <= MAX_TEXT_BYTES for text in rest)
    assert "\n".join([first, *rest]) == "\n".join([paragraph] * 60)


def _sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(create_engine(database_url))


def test_unknown_openid_chats_unlinked_and_unlink_is_polite(
    wechat_client: TestClient, database_url: str, stubs: StubServices
) -> None:
    assert _reply_text(_post(wechat_client, _text_message("你好", 1013))) == BOT_TEXT
    assert _reply_text(_post(wechat_client, _text_message(" 解绑 ", 1014))) == NOT_LINKED_REPLY
    assert len(stubs.webhook_calls) == 1
    with _sessions(database_url)() as session:
        assert session.scalars(select(WechatLink)).all() == []


def test_verification_in_the_chat_links_and_unlink_removes(
    wechat_client: TestClient, database_url: str, stubs: StubServices
) -> None:
    sessions = _sessions(database_url)
    with sessions.begin() as session:
        session.add(Customer(customer_id="C0001", name="张伟", type="个人"))
        # What the bot's verify_customer writes when this conversation proves it is C0001.
        audit(
            session,
            CUSTOMER,
            "verify_customer",
            entity="customer",
            entity_id="C0001",
        ).actor_id = conversation_key(f"wechat:{OPENID}")
    _post(wechat_client, _text_message("13800000000 A1001", 1015))
    with sessions() as session:
        assert session.get(WechatLink, OPENID) is not None
        assert session.get(WechatLink, OPENID).customer_id == "C0001"  # type: ignore[union-attr]
    assert _reply_text(_post(wechat_client, _text_message("解绑", 1016))) == UNLINKED_REPLY
    # The verification of before "解绑" does not link the follower again.
    assert _reply_text(_post(wechat_client, _text_message("你好", 1017))) == BOT_TEXT
    with sessions() as session:
        assert session.get(WechatLink, OPENID) is None
    assert len(stubs.webhook_calls) == 2


def _staff_reply_waiting(database_url: str, conversation: str, text: str) -> None:
    sessions = _sessions(database_url)
    with sessions.begin() as session:
        case = open_handoff(session, conversation=conversation, reason=HANDOFF_REASON_ASKED).case
        add_staff_reply(session, case_id=case.id, text=text, staff_id=None)


def test_staff_replies_of_a_followers_hand_off_are_pushed_once(
    database_url: str, wechat_api: FakeWechatApi, stubs: StubServices, settings: ApiSettings
) -> None:
    reply = "您好，我是客服小王，您的订单已经加急处理，明天就能发出。"
    _staff_reply_waiting(database_url, f"wechat:{OPENID}", reply)
    _staff_reply_waiting(database_url, "web-3f9c2a7e", "网页上的客户自己来取，不推送到微信")

    choices = ButtonChoices()

    async def push() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(stubs.handle)) as http:
            return await push_staff_replies(
                settings=_settings(wechat_api),
                api_settings=settings,
                http=http,
                sessions=_sessions(database_url),
                choices=choices,
            )

    assert asyncio.run(push()) == 1
    assert sent_texts(wechat_api, OPENID) == [reply]
    assert [c for c in wechat_api.calls if c[1] == SEND_PATH and c[3]["touser"] != OPENID] == []
    assert asyncio.run(push()) == 0  # each reply once
    assert stubs.webhook_calls == []


def test_the_api_pushes_staff_replies_while_it_runs(
    app: FastAPI, database_url: str, wechat_api: FakeWechatApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "CRM_WECHAT_TOKEN": TOKEN,
        "CRM_WECHAT_APP_ID": APP_ID,
        "CRM_WECHAT_APP_SECRET": APP_SECRET,
        "CRM_WECHAT_API_BASE": wechat_api.base,
        "CRM_WECHAT_PUSH_INTERVAL_S": "0.1",
    }.items():
        monkeypatch.setenv(name, value)
    reply = "客服小李：退款已经提交，三个工作日内到账。"
    _staff_reply_waiting(database_url, f"wechat:{OPENID}", reply)

    with TestClient(app):
        assert wechat_api.sent.wait(timeout=10)

    assert sent_texts(wechat_api, OPENID) == [reply]
