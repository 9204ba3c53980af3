"""Numbered buttons on text-only chats (api/channels/text_replies.py) and the access token shared by
workers (crm_store/tencent_api.py), with the real Redis on 127.0.0.1:6379 where they share them."""

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
from wechatpy.client import WeChatClient

from api.channels.text_replies import ButtonChoices, render_text
from crm_store.tencent_api import token_storage
from tests.wechat_api import FakeWechatApi, running_wechat_api

REDIS_URL = "redis://127.0.0.1:6379/0"
NOBODY_LISTENS = "redis://127.0.0.1:1/0"
ANSWER = [
    {"text": "请选择您要查询的订单："},
    {
        "text": "最近的订单：",
        "buttons": [
            {"title": "SO202611180001", "payload": '/inform{"order_id":"SO202611180001"}'},
            {"title": "SO202611150003", "payload": '/inform{"order_id":"SO202611150003"}'},
        ],
    },
]


@pytest.fixture
def conversation() -> str:
    return f"wechat:o{uuid.uuid4().hex[:27]}"


def test_buttons_are_numbered_lines() -> None:
    assert render_text(ANSWER) == (
        "请选择您要查询的订单：\n最近的订单：\n回复 1 SO202611180001\n回复 2 SO202611150003"
    )


def test_a_number_chooses_a_button_shown_by_another_worker(conversation: str) -> None:
    async def two_workers() -> tuple[str, str, str]:
        shown_by, asked_of = ButtonChoices.connect(REDIS_URL), ButtonChoices.connect(REDIS_URL)
        try:
            await shown_by.remember(conversation, ANSWER)
            return (
                await asked_of.chosen(conversation, " 2 "),
                await asked_of.chosen(conversation, "3"),
                await asked_of.chosen("wechat:someone-else", "1"),
            )
        finally:
            await shown_by.aclose()
            await asked_of.aclose()

    second, out_of_range, other_chat = asyncio.run(two_workers())

    assert second == '/inform{"order_id":"SO202611150003"}'
    assert (out_of_range, other_chat) == ("3", "1")  # sent as typed: the bot asks again


def test_an_answer_without_buttons_forgets_the_last_ones(conversation: str) -> None:
    async def run() -> str:
        choices = ButtonChoices.connect(REDIS_URL)
        try:
            await choices.remember(conversation, ANSWER)
            await choices.remember(conversation, [{"text": "好的"}])
            return await choices.chosen(conversation, "1")
        finally:
            await choices.aclose()

    assert asyncio.run(run()) == "1"


def test_without_redis_a_number_is_sent_as_typed(conversation: str, caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> str:
        choices = ButtonChoices.connect(NOBODY_LISTENS)
        try:
            await choices.remember(conversation, ANSWER)
            return await choices.chosen(conversation, "1")
        finally:
            await choices.aclose()

    assert asyncio.run(run()) == "1"
    assert "Redis unavailable" in caplog.text
    assert conversation not in caplog.text


@pytest.fixture
def wechat_api() -> Iterator[FakeWechatApi]:
    with running_wechat_api() as fake:
        yield fake


def _worker_client(fake: FakeWechatApi, redis_url: str | None, prefix: str) -> WeChatClient:
    client = WeChatClient("wx-shared-app", "secret", session=token_storage(redis_url, prefix=prefix))
    client.API_BASE_URL = fake.base + "/cgi-bin/"
    client.fetch_access_token = lambda: client._fetch_access_token(  # the fake's token URL
        url=fake.base + "/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": client.appid, "secret": client.secret},
    )
    return client


def test_workers_share_one_access_token_in_redis(wechat_api: FakeWechatApi) -> None:
    prefix = f"crm-test-token:{uuid.uuid4().hex}"
    try:
        for worker in range(3):
            _worker_client(wechat_api, REDIS_URL, prefix).message.send_text("oFollower", f"第{worker}条")
    finally:
        redis.Redis.from_url(REDIS_URL).delete(f"{prefix}:wx-shared-app_access_token")

    token_fetches = [c for c in wechat_api.calls if c[1] == "/cgi-bin/token"]
    sends = [c for c in wechat_api.calls if c[1] == "/cgi-bin/message/custom/send"]
    assert len(token_fetches) == 1
    assert len(sends) == 3


def test_an_unreachable_redis_keeps_the_token_in_memory(wechat_api: FakeWechatApi) -> None:
    client = _worker_client(wechat_api, NOBODY_LISTENS, "crm-test-token")

    client.message.send_text("oFollower", "第一条")
    client.message.send_text("oFollower", "第二条")

    assert len([c for c in wechat_api.calls if c[1] == "/cgi-bin/token"]) == 1
    assert len([c for c in wechat_api.calls if c[1] == "/cgi-bin/message/custom/send"]) == 2
