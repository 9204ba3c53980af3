"""The WeChat Official Account channel on the real stack, called as WeChat calls it (plain mode).

Callbacks are signed with wechatpy's own signer and the stack's `CRM_WECHAT_TOKEN`. WeChat shows
the follower the passive reply, or, when the turn took longer than the reply budget (4 s), the
customer-service message sent later: `_answer` reads whichever came, as the follower would.
"""

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import xmltodict
from e2e_stack import WECHAT_TOKEN, RunningStack
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wechatpy.utils import WeChatSigner

from crm_store.access import CUSTOMER
from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import HandoffCase
from crm_store.wechat_links import link
from tests.wechat_api import FakeWechatApi, sent_texts

pytestmark = pytest.mark.e2e

ACCOUNT = "gh_e2e0000000001"
LATE_REPLY_WAIT_S = 60


@pytest.fixture
def store(running_stack: RunningStack) -> Iterator[Session]:
    engine = create_engine_for(running_stack.database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def _follower() -> str:
    return "o" + uuid.uuid4().hex[:27]


def _callback(
    stack: RunningStack, openid: str, content: str, msg_id: int, *, signature: str | None = None
) -> httpx.Response:
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    signer = WeChatSigner()
    signer.add_data(WECHAT_TOKEN, timestamp, nonce)
    xml = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{timestamp}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )
    return httpx.post(
        f"{stack.api_url}/channels/wechat",
        params={"signature": signature or signer.signature, "timestamp": timestamp, "nonce": nonce},
        content=xml.encode(),
        headers={"Content-Type": "text/xml"},
        timeout=60,
    )


def _answer(response: httpx.Response, wechat_api: FakeWechatApi, openid: str) -> str:
    """What the follower sees: the passive reply, or the customer-service message(s) sent later."""
    assert response.status_code == 200, response.text
    if response.text != "success":
        return str(xmltodict.parse(response.text)["xml"]["Content"])
    deadline = time.monotonic() + LATE_REPLY_WAIT_S
    while time.monotonic() < deadline:
        if texts := sent_texts(wechat_api, openid):
            return "\n".join(texts)
        time.sleep(0.5)
    pytest.fail(f"no reply to the follower within {LATE_REPLY_WAIT_S} s")


def _msg_id() -> int:
    return int(time.time() * 1000) * 100 + uuid.uuid4().int % 100


def test_an_order_question_from_wechat_is_answered(
    running_stack: RunningStack, wechat_api: FakeWechatApi
) -> None:
    openid = _follower()
    response = _callback(running_stack, openid, "帮我查一下订单SO202611180001到哪了", _msg_id())

    answer = _answer(response, wechat_api, openid)

    assert "运输中" in answer
    assert "SF1234567890" in answer
    assert "张伟" not in answer


def test_the_same_msgid_three_times_opens_one_hand_off_case(
    running_stack: RunningStack, wechat_api: FakeWechatApi, store: Session
) -> None:
    openid, msg_id = _follower(), _msg_id()

    # WeChat's retries of one message, arriving while the first is still being answered.
    with ThreadPoolExecutor(max_workers=3) as pool:
        responses = list(pool.map(lambda _: _callback(running_stack, openid, "转人工", msg_id), range(3)))

    assert all(r.status_code == 200 for r in responses)
    answered = [r for r in responses if r.text != "success"]
    assert len(answered) <= 1
    answer = _answer(answered[0] if answered else responses[0], wechat_api, openid)
    assert "人工" in answer
    cases = store.scalar(
        select(func.count()).select_from(HandoffCase).where(HandoffCase.sender_id == f"wechat:{openid}")
    )
    assert cases == 1


def test_a_bad_signature_is_refused_and_reaches_no_one(running_stack: RunningStack) -> None:
    openid = _follower()
    response = _callback(running_stack, openid, "转人工", _msg_id(), signature="0" * 40)

    assert response.status_code == 403
    tracker = httpx.get(
        f"http://127.0.0.1:{running_stack.rasa_port}/conversations/wechat:{openid}/tracker", timeout=30
    ).json()
    assert [e for e in tracker["events"] if e.get("event") == "user"] == []


def test_a_linked_follower_is_recognised_without_verifying_again(
    running_stack: RunningStack, wechat_api: FakeWechatApi, store: Session
) -> None:
    openid = _follower()
    link(store, openid, "C0001", actor=CUSTOMER)  # as after an earlier verification in the chat
    store.commit()

    answer = _answer(_callback(running_stack, openid, "我的订单", _msg_id()), wechat_api, openid)

    # Her orders at once: no question for the phone number and an order number first.
    assert "SO202611180001" in answer
    assert "运输中" in answer
    assert "手机号" not in answer
