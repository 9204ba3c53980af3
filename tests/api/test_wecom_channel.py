"""The WeCom (企业微信) app for staff, called as WeCom calls it.

Callbacks are encrypted and signed with wechatpy's own enterprise crypto (`WeChatCrypto`, the
`echostr` with its `PrpCrypto`), as WeCom sends them; Rasa is the in-process stub of `api_stubs`,
and the app message API is a real HTTP server on loopback that records every request
(`tests.care.wecom_api`).
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pytest
import xmltodict
from api_stubs import STAFF_PASSWORD_HASH, StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

from api.channels.wecom import INACTIVE_REPLY, NOT_LINKED_REPLY, UNSUPPORTED_REPLY
from api.deps import get_http_client
from api.gateway import TOO_LONG_REPLY
from crm_store.accounts import OPERATOR
from crm_store.db import make_session_factory
from crm_store.models import Employee
from crm_store.settings import WecomSettings, get_wecom_settings
from crm_store.wecom_links import link_wecom
from tests.care.wecom_api import AGENT_ID, CORP_ID, SECRET, FakeWecomApi, running_wecom_api

TOKEN = "wecom-callback-token-3f9a"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"  # 43 characters, as WeCom makes them
SALES_USERID = "LiuYang"
SALES_ID = "E03"
URL = "/channels/wecom"
BOT_TEXT = "您好，我是小助手～\n请选择：\n回复 1 查订单"


class Answer(Protocol):
    """What the test client answers (its own copy of httpx's Response)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...


@dataclass
class Slow:
    """Seconds each call to Rasa waits before the stub answers (0: at once)."""

    delay_s: float = 0.0


@pytest.fixture
def wecom_api() -> Iterator[FakeWecomApi]:
    with running_wecom_api() as fake:
        yield fake


@pytest.fixture
def slow() -> Slow:
    return Slow()


def _settings(wecom_api: FakeWecomApi, **changes: Any) -> WecomSettings:
    values: dict[str, Any] = {
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "secret": SecretStr(SECRET),
        "token": SecretStr(TOKEN),
        "aes_key": SecretStr(AES_KEY),
        "api_base": wecom_api.base,
        "reply_budget_s": 2.0,
        **changes,
    }
    return WecomSettings(**values)


@pytest.fixture
def wecom_settings(wecom_api: FakeWecomApi) -> dict[str, WecomSettings]:
    """The settings the app reads, in a box a test may change before its calls."""
    return {"now": _settings(wecom_api)}


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """The store with the salesperson E03: a password (a sign-in account), linked to `SALES_USERID`."""
    engine = create_engine(database_url)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add(
            Employee(
                employee_id=SALES_ID,
                name="刘洋",
                role="sales",
                region="华北",
                password_hash=STAFF_PASSWORD_HASH,
            )
        )
        session.flush()
        link_wecom(session, SALES_ID, SALES_USERID, actor=OPERATOR)
    try:
        yield factory
    finally:
        engine.dispose()


@pytest.fixture
def wecom_client(
    app: FastAPI,
    stubs: StubServices,
    slow: Slow,
    wecom_settings: dict[str, WecomSettings],
    sessions: sessionmaker[Session],
) -> Iterator[TestClient]:
    async def handle(request: httpx.Request) -> httpx.Response:
        if slow.delay_s:
            await asyncio.sleep(slow.delay_s)
        return stubs.handle(request)

    async def http_client() -> AsyncIterator[httpx.AsyncClient]:
        # Not closed with the request: a late turn still uses it after the callback was answered.
        yield httpx.AsyncClient(transport=httpx.MockTransport(handle))

    app.dependency_overrides[get_http_client] = http_client
    app.dependency_overrides[get_wecom_settings] = lambda: wecom_settings["now"]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _crypto() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, AES_KEY, CORP_ID)


def _xml(msg_type: str, msg_id: int | None, userid: str = SALES_USERID, **fields: str) -> str:
    parts = [
        f"<ToUserName><![CDATA[{CORP_ID}]]></ToUserName>",
        f"<FromUserName><![CDATA[{userid}]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime>",
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>",
        *(f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items()),
        f"<AgentID>{AGENT_ID}</AgentID>",
    ]
    if msg_id is not None:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    return "<xml>" + "".join(parts) + "</xml>"


def _text(content: str, msg_id: int, userid: str = SALES_USERID) -> str:
    return _xml("text", msg_id, userid, Content=content)


_counter = iter(range(10**6))


def _post(client: TestClient, xml: str, *, signature: str | None = None) -> tuple[Answer, str, str]:
    """POST `xml` encrypted as WeCom does: the `Encrypt` element in the body, `msg_signature` in the query."""
    timestamp, nonce = str(int(time.time())), f"n{next(_counter)}"
    sealed = xmltodict.parse(_crypto().encrypt_message(xml, nonce, timestamp))["xml"]
    body = (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[{AGENT_ID}]]></AgentID>"
        f"<Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
    )
    params = {"msg_signature": signature or sealed["MsgSignature"], "timestamp": timestamp, "nonce": nonce}
    return client.post(URL, params=params, content=body.encode()), timestamp, nonce


def _reply(answer: tuple[Answer, str, str], userid: str = SALES_USERID) -> str:
    """The decrypted passive reply's text, after checking its signature and addressing."""
    response, _timestamp, _nonce = answer
    assert response.status_code == 200, response.text
    sealed = xmltodict.parse(response.text)["xml"]
    assert "Content" not in sealed
    plain = _crypto().decrypt_message(
        response.text, sealed["MsgSignature"], sealed["TimeStamp"], sealed["Nonce"]
    )
    reply = xmltodict.parse(plain)["xml"]
    assert (reply["ToUserName"], reply["FromUserName"], reply["MsgType"]) == (userid, CORP_ID, "text")
    return str(reply["Content"])


def _empty(answer: tuple[Answer, str, str]) -> bool:
    response = answer[0]
    return response.status_code == 200 and response.text == ""


def test_url_verification_answers_the_decrypted_echostr(wecom_client: TestClient) -> None:
    timestamp, nonce = "1733540000", "verify"
    echostr = PrpCrypto(_crypto().key).encrypt("8041937765432", CORP_ID).decode()
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, nonce, echostr)
    params = {"msg_signature": signer.signature, "timestamp": timestamp, "nonce": nonce, "echostr": echostr}

    good = wecom_client.get(URL, params=params)
    assert (good.status_code, good.text) == (200, "8041937765432")
    bad = wecom_client.get(URL, params={**params, "msg_signature": "0" * 40})
    assert bad.status_code == 403
    assert "8041937765432" not in bad.text


def test_a_salespersons_turn_reaches_rasa_as_that_employee(
    wecom_client: TestClient, stubs: StubServices
) -> None:
    assert _reply(_post(wecom_client, _text("今天拜访了张伟，聊了续约", 2001))) == BOT_TEXT
    (call,) = stubs.webhook_calls
    assert call["sender"] == f"staff:{SALES_ID}:wecom"
    assert call["message"] == "今天拜访了张伟，聊了续约"
    assert (call["metadata"]["role"], call["metadata"]["principal_id"], call["metadata"]["channel"]) == (
        "sales",
        SALES_ID,
        "wecom",
    )


def test_a_numbered_reply_and_a_voice_message_are_turns(
    wecom_client: TestClient, stubs: StubServices
) -> None:
    _post(wecom_client, _text("你好", 2101))
    _post(wecom_client, _text("1", 2102))
    voice = _xml("voice", 2103, MediaId="m1", Format="amr", Recognition="张伟的客户画像")
    assert _reply(_post(wecom_client, voice)) == BOT_TEXT
    assert [c["message"] for c in stubs.webhook_calls] == ["你好", "/check_order_status", "张伟的客户画像"]


def test_a_bad_signature_is_refused_and_reaches_no_one(wecom_client: TestClient, stubs: StubServices) -> None:
    response, _, _ = _post(wecom_client, _text("你好", 2002), signature="f" * 40)
    assert response.status_code == 403
    assert stubs.webhook_calls == []


def test_off_without_a_token(
    wecom_client: TestClient, wecom_settings: dict[str, WecomSettings], wecom_api: FakeWecomApi
) -> None:
    wecom_settings["now"] = _settings(wecom_api, token=None)
    assert (
        wecom_client.get(URL, params={"msg_signature": "x", "timestamp": "1", "nonce": "2"}).status_code
        == 404
    )
    assert _post(wecom_client, _text("你好", 2003))[0].status_code == 404


def test_a_replayed_msgid_is_one_turn(wecom_client: TestClient, stubs: StubServices) -> None:
    xml = _text("帮我看看张伟", 2004)
    assert _reply(_post(wecom_client, xml)) == BOT_TEXT
    assert _empty(_post(wecom_client, xml))
    assert _empty(_post(wecom_client, xml))
    assert len(stubs.webhook_calls) == 1


@pytest.mark.parametrize(
    "inner", ["<xml><FromUserName>", "not xml at all", "<xml><Content>x</Content></xml>"]
)
def test_malformed_xml_is_400_without_a_trace(
    wecom_client: TestClient, stubs: StubServices, inner: str
) -> None:
    response, _, _ = _post(wecom_client, inner)
    assert response.status_code == 400
    outer = wecom_client.post(
        URL, params={"msg_signature": "0" * 40, "timestamp": "1", "nonce": "2"}, content=b"<xml><Encrypt>"
    )
    assert outer.status_code == 400
    assert "Traceback" not in response.text + outer.text
    assert stubs.webhook_calls == []


def test_an_unknown_member_is_told_to_ask_the_admin_and_reaches_no_one(
    wecom_client: TestClient, stubs: StubServices
) -> None:
    assert _reply(_post(wecom_client, _text("你好", 2005, "WangFang")), "WangFang") == NOT_LINKED_REPLY
    assert stubs.webhook_calls == []


def test_an_employee_without_an_account_is_refused_likewise(
    wecom_client: TestClient, stubs: StubServices, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.get_one(Employee, SALES_ID).password_hash = None
    assert _reply(_post(wecom_client, _text("你好", 2006))) == INACTIVE_REPLY
    assert stubs.webhook_calls == []


def test_a_3000_character_message_gets_the_polite_limit(
    wecom_client: TestClient, stubs: StubServices
) -> None:
    assert _reply(_post(wecom_client, _text("好" * 3000, 2007))) == TOO_LONG_REPLY.format(limit=2000)
    assert stubs.webhook_calls == []


def test_other_message_types_get_a_polite_reply_and_events_nothing(
    wecom_client: TestClient, stubs: StubServices
) -> None:
    image = _xml("image", 2008, PicUrl="http://example.invalid/a.jpg", MediaId="m2")
    assert _reply(_post(wecom_client, image)) == UNSUPPORTED_REPLY
    assert _empty(_post(wecom_client, _xml("event", None, Event="enter_agent")))
    assert stubs.webhook_calls == []


def test_a_slow_turn_is_acknowledged_then_sent_as_an_app_message(
    wecom_client: TestClient,
    wecom_settings: dict[str, WecomSettings],
    wecom_api: FakeWecomApi,
    slow: Slow,
    stubs: StubServices,
) -> None:
    wecom_settings["now"] = _settings(wecom_api, reply_budget_s=0.2)
    slow.delay_s = 0.6
    assert _empty(_post(wecom_client, _text("张伟的客户画像", 2009)))  # TestClient waits for the delivery too
    wecom_api.expire_tokens = 1  # the next send finds its token expired: fetched again, sent again
    assert _empty(_post(wecom_client, _text("我的跟进提醒", 2010)))
    assert [c["message"] for c in stubs.webhook_calls] == ["张伟的客户画像", "我的跟进提醒"]
    fetches = wecom_api.token_fetches()
    assert fetches[0][2] == {"corpid": [CORP_ID], "corpsecret": [SECRET]}
    assert len(fetches) == 2  # cached for the first send, fetched again when WeCom said it expired
    assert [query["access_token"] for query, _body in wecom_api.accepted] == [["ACCESS-1"], ["ACCESS-2"]]
    for _query, body in wecom_api.accepted:
        assert body["touser"] == SALES_USERID
        assert body["agentid"] == AGENT_ID
        assert (body["msgtype"], body["text"]) == ("text", {"content": BOT_TEXT})


def test_a_long_answer_continues_as_app_messages(
    wecom_client: TestClient, wecom_api: FakeWecomApi, stubs: StubServices
) -> None:
    lines = [f"第{n}位客户：最近一次联系在上周，待跟进事项两项。" for n in range(1, 101)]
    stubs.rasa_reply = [{"text": "\n".join(lines)}]
    first = _reply(_post(wecom_client, _text("我的客户", 2011)))
    rest = [body["text"]["content"] for _query, body in wecom_api.accepted]
    assert rest and all(len(part.encode()) <= 2048 for part in [first, *rest])
    assert "\n".join([first, *rest]) == "\n".join(lines)
