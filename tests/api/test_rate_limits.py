"""Rate limits of the API (api/rate_limit.py): chat turns per conversation, failed sign-ins per
employee id and per client address, each refused with 429 and `Retry-After`.

Tests lower the budgets through the app's settings seam (`dependency_overrides[api_settings]`);
the sign-in test of the issue ("30 wrong passwords in a row get 429") runs on the defaults. The
Socket.IO test borrows the widget and its server from tests/api/test_socketio_channel.py. The
shared counters run on the machine's Redis (127.0.0.1:6379), two apps standing in for two API
workers.
"""

import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest
import redis
import test_socketio_channel as socketio_test
from api_stubs import (
    ACTION_SERVER_URL,
    JWT_SECRET,
    RASA_URL,
    STAFF_ID,
    STAFF_PASSWORD,
    STAFF_TOKEN,
    StubServices,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_socketio_channel import Widget

from api.deps import api_settings
from api.main import create_app
from api.rate_limit import KEY_PREFIX, RateLimits, Refusal
from crm_store.db import create_engine_for
from crm_store.models import AuditLog
from crm_store.settings import ApiSettings, get_api_settings

REDIS_URL = "redis://127.0.0.1:6379/0"
# The web widget and the API under uvicorn it talks to (fixtures of test_socketio_channel.py).
api_url = socketio_test.api_url
widget = socketio_test.widget


def limited(app: FastAPI, settings: ApiSettings, **budgets: str) -> ApiSettings:
    """Give the app `settings` with these budgets (e.g. `chat_rate_limit="3 per minute"`)."""
    lowered = settings.model_copy(update=budgets)
    app.dependency_overrides[api_settings] = lambda: lowered
    return lowered


def say(client: TestClient, sender: str, message: str = "你好", **kwargs: Any) -> Any:
    return client.post("/api/chat", json={"sender": sender, "message": message}, **kwargs)


def login(client: TestClient, username: str = STAFF_ID, password: str = STAFF_PASSWORD) -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def audited_sign_ins(database_url: str) -> int:
    engine = create_engine_for(database_url)
    try:
        with Session(engine) as session:
            return (
                session.scalar(
                    select(func.count()).select_from(AuditLog).where(AuditLog.entity == "employee")
                )
                or 0
            )
    finally:
        engine.dispose()


# --- chat -----------------------------------------------------------------------------------------


def test_a_conversation_over_its_budget_gets_429_and_a_polite_reply_without_reaching_rasa(
    app: FastAPI, client: TestClient, settings: ApiSettings, stubs: StubServices
) -> None:
    limited(app, settings, chat_rate_limit="3 per minute")

    statuses = [say(client, "web-flood").status_code for _ in range(3)]
    refused = say(client, "web-flood")

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    [message] = refused.json()
    assert message["text"] == f"您发消息有点快，请 {refused.headers['retry-after']} 秒后再发给我～"
    assert len(stubs.webhook_calls) == 3


def test_retry_after_is_that_of_the_spent_budget_only(
    app: FastAPI, client: TestClient, settings: ApiSettings
) -> None:
    limited(app, settings, chat_rate_limit="2 per 10 seconds; 100 per hour")

    statuses = [say(client, "web-burst").status_code for _ in range(2)]
    refused = say(client, "web-burst")

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 10


def test_other_conversations_keep_their_own_budget(
    app: FastAPI, client: TestClient, settings: ApiSettings, stubs: StubServices
) -> None:
    limited(app, settings, chat_rate_limit="2 per minute")
    for _ in range(3):
        say(client, "web-flood")

    other = say(client, "web-quiet")
    staff = say(client, "web-flood", headers={"Authorization": f"Bearer {STAFF_TOKEN}"})

    # The staff conversation is `staff:E99:web-flood`, another conversation with its own budget.
    assert other.status_code == 200
    assert staff.status_code == 200
    assert [call["sender"] for call in stubs.webhook_calls][-2:] == [
        "web-quiet",
        f"staff:{STAFF_ID}:web-flood",
    ]


def test_the_default_budget_leaves_a_brisk_conversation_alone(client: TestClient) -> None:
    statuses = {say(client, "web-brisk", f"第{n}个问题").status_code for n in range(40)}

    assert statuses == {200}


def test_the_rate_limit_log_line_names_no_sender(
    app: FastAPI, client: TestClient, settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    limited(app, settings, chat_rate_limit="1 per minute")
    caplog.set_level(logging.INFO)

    say(client, "web-13800138000")
    say(client, "web-13800138000")

    assert any("rate limit" in record.getMessage() for record in caplog.records)
    assert "13800138000" not in caplog.text


LIMITED = pytest.mark.parametrize(
    "settings",
    [
        ApiSettings(
            rasa_url=RASA_URL,
            action_server_url=ACTION_SERVER_URL,
            jwt_secret=SecretStr(JWT_SECRET),
            chat_rate_limit="2 per minute",
        )
    ],
    ids=["2-turns-a-minute"],
)


@LIMITED
def test_the_socketio_channel_and_the_chat_share_one_budget(
    settings: ApiSettings, api_url: str, widget: Callable[..., Widget], stubs: StubServices
) -> None:
    chat = widget()
    session_id = chat.start_session("widget-flood-1")

    chat.say("你好", session_id)
    chat.replies(3)
    chat.say("在吗", session_id)
    chat.replies(3)
    chat.say("在吗？？", session_id)
    [refused] = chat.replies(1)
    over_http = httpx.post(f"{api_url}/api/chat", json={"sender": session_id, "message": "还在吗"})

    assert refused["text"].startswith("您发消息有点快，请 ")
    assert chat.nothing_more()
    assert over_http.status_code == 429
    assert len(stubs.webhook_calls) == 2


# --- sign-in --------------------------------------------------------------------------------------


def test_thirty_wrong_passwords_in_a_row_end_in_429_after_the_lock_out(
    client: TestClient, database_url: str
) -> None:
    statuses = [login(client, STAFF_ID, f"wrong-{n}").status_code for n in range(30)]
    refused = login(client)  # the right password, too late

    # Defaults: locked (423) at the 5th failure, refused (429) past 20 failures in 15 minutes.
    assert statuses == [401] * 4 + [423] * 16 + [429] * 10
    assert refused.status_code == 429
    assert 800 < int(refused.headers["retry-after"]) <= 900
    assert refused.json() == {"detail": "登录尝试过于频繁，请 15 分钟后再试"}
    # A refused attempt is answered before the store: only the 20 real attempts are audited.
    assert audited_sign_ins(database_url) == 20


def test_one_address_trying_many_employee_ids_gets_429(
    app: FastAPI, client: TestClient, settings: ApiSettings
) -> None:
    limited(app, settings, login_address_rate_limit="5 per minute")

    statuses = [login(client, f"E{n:02d}", "guess-1234").status_code for n in range(6)]

    assert statuses == [401] * 5 + [429]


def test_the_address_budget_is_per_address(settings: ApiSettings) -> None:
    budgets = settings.model_copy(update={"login_address_rate_limit": "2 per minute"})

    async def refusals() -> list[Refusal | None]:
        limits = RateLimits.connect(None)
        for n in range(2):
            await limits.login_failed(f"E{n:02d}", "198.51.100.1", budgets)
        return [
            await limits.login_refusal("E50", "198.51.100.1", budgets),
            await limits.login_refusal("E50", "198.51.100.2", budgets),
        ]

    here, elsewhere = anyio.run(refusals)

    assert here is not None and 1 <= here.retry_after_s <= 60
    assert elsewhere is None


def test_successful_sign_ins_spend_no_budget(app: FastAPI, client: TestClient, settings: ApiSettings) -> None:
    limited(app, settings, login_account_rate_limit="2 per minute", login_address_rate_limit="2 per minute")

    assert [login(client).status_code for _ in range(4)] == [200] * 4
    assert [login(client, STAFF_ID, "wrong").status_code for _ in range(3)] == [401, 401, 429]


def test_a_budget_not_in_the_limits_notation_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="is not a rate limit"):
        ApiSettings(chat_rate_limit="plenty")


# --- shared counters ------------------------------------------------------------------------------


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def counters_in(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[None]:
    """The lifespan's settings (read once per process, then cached) with `CRM_REDIS_URL`."""
    monkeypatch.setenv("CRM_REDIS_URL", url)
    get_api_settings.cache_clear()
    try:
        yield
    finally:
        monkeypatch.delenv("CRM_REDIS_URL")
        get_api_settings.cache_clear()


@pytest.fixture
def redis_counters(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API's counters in the machine's Redis; the keys this test made are removed after it."""
    if not _redis_reachable():
        pytest.skip("no Redis on 127.0.0.1:6379")
    with counters_in(monkeypatch, REDIS_URL):
        yield
    with redis.Redis.from_url(REDIS_URL) as server:
        keys = list(server.scan_iter(f"{KEY_PREFIX}*"))
        if keys:
            server.delete(*keys)


def test_api_workers_share_one_budget_through_redis(
    redis_counters: None, database_url: str, settings: ApiSettings, stubs: StubServices, app: FastAPI
) -> None:
    other_worker = create_app()
    other_worker.dependency_overrides = dict(app.dependency_overrides)
    limited(app, settings, chat_rate_limit="3 per minute")
    limited(other_worker, settings, chat_rate_limit="3 per minute")
    sender = f"web-{uuid.uuid4().hex}"

    with TestClient(app) as first, TestClient(other_worker) as second:
        statuses = [
            say(first, sender).status_code,
            say(second, sender).status_code,
            say(first, sender).status_code,
        ]
        refused = say(second, sender)

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert "retry-after" in refused.headers


def test_an_unreachable_redis_lets_chat_through_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
    app: FastAPI,
    settings: ApiSettings,
    stubs: StubServices,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limited(app, settings, chat_rate_limit="1 per minute")

    with counters_in(monkeypatch, f"redis://127.0.0.1:{port}/0"), TestClient(app) as client:
        statuses = [say(client, "web-no-redis").status_code for _ in range(2)]

    assert statuses == [200, 200]
    assert "chat rate limit not checked" in caplog.text
