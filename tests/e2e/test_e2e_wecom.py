"""The WeCom (企业微信) app for staff on the real stack: a salesperson asks from WeCom, with their own scope.

Callbacks are encrypted and signed with wechatpy's own enterprise crypto and the stack's
`CRM_WECOM_*`, as WeCom sends them. E03 刘洋 is the salesperson who owns C0003 王芳 of 华峰科技 (her
phone shows in full to her owner); C0001 张伟 belongs to E02 in another region. WeCom shows the
member the passive reply, or, when the turn took longer than the reply budget, the app message sent
later: `_answer` reads whichever came, as the member would.
"""

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import xmltodict
from e2e_stack import WECOM_AES_KEY, WECOM_AGENT_ID, WECOM_CORP_ID, WECOM_TOKEN, RunningStack
from wechatpy.enterprise.crypto import WeChatCrypto

from crm_store.accounts import OPERATOR
from crm_store.db import create_engine_for, make_session_factory
from crm_store.wecom_links import link_wecom
from tests.care.wecom_api import FakeWecomApi

pytestmark = pytest.mark.e2e

SALES_USERID = "LiuYang-e2e"
LATE_REPLY_WAIT_S = 60
WANG_FANG_PHONE = "17205673406"
ZHANG_WEI_PHONE = "18201164104"


@pytest.fixture(scope="module")
def linked_salesperson(running_stack: RunningStack) -> Iterator[str]:
    """E03 linked to a WeCom member, as `crmbot user link-wecom E03 LiuYang-e2e` does."""
    engine = create_engine_for(running_stack.database_url)
    with make_session_factory(engine).begin() as session:
        link_wecom(session, "E03", SALES_USERID, actor=OPERATOR)
    engine.dispose()
    yield SALES_USERID


def _crypto() -> WeChatCrypto:
    return WeChatCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID)


def _ask(stack: RunningStack, wecom_api: FakeWecomApi, userid: str, content: str) -> str:
    """What the member sees after sending `content`: the passive reply, or the app messages sent later."""
    timestamp, nonce, msg_id = str(int(time.time())), uuid.uuid4().hex[:10], uuid.uuid4().int % 10**15
    xml = (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{userid}]]></FromUserName><CreateTime>{timestamp}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId><AgentID>{WECOM_AGENT_ID}</AgentID></xml>"
    )
    sealed = xmltodict.parse(_crypto().encrypt_message(xml, nonce, timestamp))["xml"]
    body = (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP_ID}]]></ToUserName><AgentID><![CDATA[{WECOM_AGENT_ID}]]>"
        f"</AgentID><Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
    )
    already = len(wecom_api.accepted)
    response = httpx.post(
        f"{stack.api_url}/channels/wecom",
        params={"msg_signature": sealed["MsgSignature"], "timestamp": timestamp, "nonce": nonce},
        content=body.encode(),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    if response.text:
        reply = xmltodict.parse(response.text)["xml"]
        plain = _crypto().decrypt_message(
            response.text, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"]
        )
        return str(xmltodict.parse(plain)["xml"]["Content"])
    deadline = time.monotonic() + LATE_REPLY_WAIT_S
    while time.monotonic() < deadline:
        late = [
            body["text"]["content"]
            for _q, body in wecom_api.accepted[already:]
            if body.get("touser") == userid
        ]
        if late:
            return "\n".join(late)
        time.sleep(0.5)
    pytest.fail(f"no reply to the member within {LATE_REPLY_WAIT_S} s")


def test_a_salesperson_asks_for_their_customers_360_view_from_wecom(
    running_stack: RunningStack, wecom_api: FakeWecomApi, linked_salesperson: str
) -> None:
    answer = _ask(running_stack, wecom_api, linked_salesperson, "查一下王芳的档案")

    assert "王芳" in answer and "华峰科技" in answer
    assert WANG_FANG_PHONE in answer  # her owner sees her phone in full


def test_a_customer_outside_the_salespersons_scope_is_not_shown_on_wecom(
    running_stack: RunningStack, wecom_api: FakeWecomApi, linked_salesperson: str
) -> None:
    answer = _ask(running_stack, wecom_api, linked_salesperson, "查一下张伟的档案")

    assert ZHANG_WEI_PHONE[-4:] not in answer
    assert "靠窗" not in answer  # nothing of her profile (her note)


def test_a_member_not_linked_to_an_employee_reaches_no_one(
    running_stack: RunningStack, wecom_api: FakeWecomApi
) -> None:
    answer = _ask(running_stack, wecom_api, "Stranger-e2e", "查一下王芳的档案")

    assert "关联" in answer
    assert "华峰科技" not in answer and WANG_FANG_PHONE not in answer
