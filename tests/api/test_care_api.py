"""`GET /api/care`: the outbox's counts and the channels' health, for managers and admins only."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from api_stubs import STAFF_PASSWORD_HASH, STAFF_TOKEN, StaffHeaders, StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.auth import issue_token
from api.care_inbox import ACTIVE_WINDOW, VERIFIED_WINDOW, notice_text
from api.deps import get_http_client
from crm_store import clock
from crm_store.accounts import stamp_of
from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import AuditLog, CareChannel, Outbox
from crm_store.privacy import conversation_key
from crm_store.settings import PROJECT_ROOT, ApiSettings
from crm_store.vocab import CARE_RULES


def _add_messages(database_url: str) -> None:
    engine = create_engine_for(database_url)
    sent_at = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    try:
        with make_session_factory(engine).begin() as session:
            for n, status in enumerate(("pending", "pending", "sent", "failed", "skipped")):
                session.add(
                    Outbox(
                        channel="staff_inbox" if n % 2 else "email",
                        kind="birthday",
                        body="生日快乐",
                        status=status,
                        dedupe_key=f"birthday:C{n}:2026-11-23:staff:staff_inbox",
                        sent_at=sent_at if status == "sent" else None,
                    )
                )
            session.add(
                CareChannel(channel="sms", consecutive_failures=10, paused=True, last_error="timeout")
            )
    finally:
        engine.dispose()


def test_care_status_needs_a_sign_in(client: TestClient) -> None:
    response = client.get("/api/care")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ["sales", "service"])
def test_care_status_refused_to_other_staff_roles(
    client: TestClient, staff_headers: StaffHeaders, role: str
) -> None:
    response = client.get("/api/care", headers=staff_headers("E71", role=role))
    assert response.status_code == 403
    assert response.json()["detail"]


def test_care_status_refused_to_a_customer_with_a_bad_token(client: TestClient) -> None:
    # A customer has no token; whatever they send as one is not a sign-in.
    response = client.get("/api/care", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


def test_care_status_counts_for_a_manager(
    client: TestClient, staff_headers: StaffHeaders, database_url: str
) -> None:
    _add_messages(database_url)
    response = client.get("/api/care", headers=staff_headers("E72", role="manager"))
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("pending", "sent", "failed", "skipped", "deferred")} == {
        "pending": 2,
        "sent": 1,
        "failed": 1,
        "skipped": 1,
        "deferred": 0,
    }
    assert body["channels"] == [
        {"channel": "sms", "consecutive_failures": 10, "paused": True, "last_error": "timeout"}
    ]


def test_care_status_for_an_admin_on_an_empty_outbox(client: TestClient) -> None:
    response = client.get("/api/care", headers={"Authorization": f"Bearer {STAFF_TOKEN}"})
    assert response.status_code == 200
    body = response.json()
    assert body["pending"] == body["sent"] == body["failed"] == 0
    assert body["channels"] == []


# --- care messages in the chat (`GET /api/chat/updates`, api/care_inbox.py) -------------------


@dataclass
class FakeRasa:
    """Rasa's conversation API as the care inbox uses it: the tracker and trigger_intent."""

    latest_event_time: float | None = field(default_factory=time.time)
    latest_text: str | None = "今天要跟进谁"
    active_loop: str | None = None
    up: bool = True
    triggered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tracker_reads: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        path = request.url.path
        # As Rasa reads it: the raw path segment, not percent-decoded (a `%3A` stays in the id).
        raw_path = request.url.raw_path.decode("ascii").split("?")[0]
        conversation = raw_path.split("/")[2] if path.startswith("/conversations/") else ""
        if request.method == "GET" and path.endswith("/tracker"):
            self.tracker_reads += 1
            assert request.url.params["include_events"] == "NONE"
            return httpx.Response(
                200,
                json={
                    "sender_id": conversation,
                    "latest_event_time": self.latest_event_time,
                    "latest_message": {"text": self.latest_text} if self.latest_text else None,
                    "active_loop": {"name": self.active_loop} if self.active_loop else {},
                    "events": None,
                },
            )
        if request.method == "POST" and path.endswith("/trigger_intent"):
            body = json.loads(request.content)
            self.triggered.append((conversation, body))
            text = notice_text(body["entities"]["care_rule"], body["entities"]["care_text"])
            return httpx.Response(
                200, json={"tracker": {}, "messages": [{"recipient_id": conversation, "text": text}]}
            )
        return httpx.Response(404)


@pytest.fixture
def rasa(app: FastAPI, stubs: StubServices) -> FakeRasa:
    fake = FakeRasa()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/conversations/"):
            return fake.handle(request)
        return stubs.handle(request)

    async def client() -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(route)) as http:
            yield http

    app.dependency_overrides[get_http_client] = client
    return fake


def _as(settings: ApiSettings, employee_id: str) -> dict[str, str]:
    token = issue_token(settings, employee_id, stamp_of(STAFF_PASSWORD_HASH)).access_token
    return {"Authorization": f"Bearer {token}"}


def _sent(
    sessions: sessionmaker[Session],
    *,
    rule: str,
    text: str,
    customer_id: str,
    employee_id: str | None = None,
    channel: str = "staff_inbox",
    status: str = "sent",
) -> int:
    audience = "staff" if employee_id else "customer"
    with sessions.begin() as session:
        row = Outbox(
            channel=channel,
            kind=rule,
            body=text,
            customer_id=customer_id,
            employee_id=employee_id,
            status=status,
            dedupe_key=f"{rule}:{customer_id}:{uuid.uuid4().hex}:{audience}:{channel}",
            sent_at=clock.now() if status == "sent" else None,
        )
        session.add(row)
        session.flush()
        return row.id


def _read_at(sessions: sessionmaker[Session], message_id: int) -> datetime | None:
    with sessions() as session:
        row = session.get(Outbox, message_id)
        assert row is not None
        return row.read_at


def _verify(sessions: sessionmaker[Session], sender: str, customer_id: str, *, at: datetime) -> None:
    """What `verify_customer` records when the sender proves to be the customer."""
    with sessions.begin() as session:
        session.add(
            AuditLog(
                actor_role="customer",
                actor_id=conversation_key(sender),
                action="verify_customer",
                entity="customer",
                entity_id=customer_id,
                detail={},
                occurred_at=at,
            )
        )


def test_staff_notice_pushed_into_the_active_conversation_once(
    client: TestClient, demo: sessionmaker[Session], rasa: FakeRasa, settings: ApiSettings
) -> None:
    notice = _sent(
        demo,
        rule="birthday",
        text="张伟 11月25日生日，记得送上祝福。",
        customer_id="C0001",
        employee_id="E02",
    )
    headers = _as(settings, "E02")

    first = client.get("/api/chat/updates", params={"sender": "tab-1"}, headers=headers)
    assert first.status_code == 200
    assert first.json() == [
        {"recipient_id": "staff:E02:tab-1", "text": "【生日提醒】张伟 11月25日生日，记得送上祝福。"}
    ]
    assert rasa.triggered == [
        (
            "staff:E02:tab-1",
            {
                "name": "care_notice",
                "entities": {"care_rule": "birthday", "care_text": "张伟 11月25日生日，记得送上祝福。"},
            },
        )
    ]
    assert _read_at(demo, notice) is not None
    # Shown once: neither this page nor another tab of the same employee gets it again.
    assert client.get("/api/chat/updates", params={"sender": "tab-1"}, headers=headers).json() == []
    assert client.get("/api/chat/updates", params={"sender": "tab-2"}, headers=headers).json() == []
    assert len(rasa.triggered) == 1


def test_staff_notice_not_pushed_into_an_idle_conversation(
    client: TestClient, demo: sessionmaker[Session], rasa: FakeRasa, settings: ApiSettings
) -> None:
    rasa.latest_event_time = time.time() - ACTIVE_WINDOW.total_seconds() - 60
    _sent(demo, rule="follow_up", text="今天该回访王芳了。", customer_id="C0003", employee_id="E03")
    body = client.get("/api/chat/updates", params={"sender": "tab-1"}, headers=_as(settings, "E03")).json()
    # Worded by the API from the same domain response; Rasa's conversation is left alone.
    assert body == [{"recipient_id": "staff:E03:tab-1", "text": "【跟进提醒】今天该回访王芳了。"}]
    assert rasa.triggered == []


@pytest.mark.parametrize("case", ["form_running", "never_written", "rasa_down"])
def test_staff_notice_worded_by_the_api_when_rasa_cannot_take_it(
    client: TestClient, demo: sessionmaker[Session], rasa: FakeRasa, settings: ApiSettings, case: str
) -> None:
    if case == "form_running":
        rasa.active_loop = "log_visit_form"
    elif case == "never_written":
        rasa.latest_text = None
    else:
        rasa.up = False
    _sent(demo, rule="sla", text="工单 T09001 已用去八成处理时限。", customer_id="C0001", employee_id="E02")
    body = client.get("/api/chat/updates", params={"sender": "tab-1"}, headers=_as(settings, "E02")).json()
    assert [m["text"] for m in body] == ["【投诉时限提醒】工单 T09001 已用去八成处理时限。"]
    assert rasa.triggered == []


def test_staff_poll_without_notices_does_not_call_rasa(
    client: TestClient, demo: sessionmaker[Session], rasa: FakeRasa, settings: ApiSettings
) -> None:
    # Another employee's notice, a customer's message and a pending one are not E02's to see.
    _sent(demo, rule="birthday", text="别人的提醒", customer_id="C0003", employee_id="E03")
    _sent(demo, rule="birthday", text="客户的祝福", customer_id="C0001", channel="web")
    _sent(demo, rule="birthday", text="还没发出", customer_id="C0001", employee_id="E02", status="pending")
    assert (
        client.get("/api/chat/updates", params={"sender": "tab-1"}, headers=_as(settings, "E02")).json() == []
    )
    assert rasa.tracker_reads == 0


def test_customer_inbox_shown_once_to_the_verified_customer(
    client: TestClient, demo: sessionmaker[Session], rasa: FakeRasa
) -> None:
    greeting = _sent(demo, rule="birthday", text="张先生，祝您生日快乐！", customer_id="C0001", channel="web")
    other = _sent(demo, rule="lapse", text="李女士，好久不见。", customer_id="C0002", channel="web")

    # Not verified yet: nothing, and the message stays unread.
    assert client.get("/api/chat/updates", params={"sender": "web-7"}).json() == []
    assert _read_at(demo, greeting) is None

    _verify(demo, "web-7", "C0001", at=clock.now() - timedelta(minutes=5))
    body = client.get("/api/chat/updates", params={"sender": "web-7"}).json()
    assert body == [{"recipient_id": "web-7", "text": "张先生，祝您生日快乐！"}]
    assert client.get("/api/chat/updates", params={"sender": "web-7"}).json() == []
    assert _read_at(demo, greeting) is not None
    assert _read_at(demo, other) is None
    assert rasa.triggered == []


def test_customer_inbox_not_shown_after_the_verification_session(
    client: TestClient, demo: sessionmaker[Session], rasa: FakeRasa
) -> None:
    greeting = _sent(demo, rule="birthday", text="张先生，祝您生日快乐！", customer_id="C0001", channel="web")
    _verify(demo, "web-8", "C0001", at=clock.now() - VERIFIED_WINDOW - timedelta(minutes=1))
    # Another conversation verified just now is not this one.
    _verify(demo, "web-9", "C0001", at=clock.now())
    assert client.get("/api/chat/updates", params={"sender": "web-8"}).json() == []
    assert _read_at(demo, greeting) is None


@pytest.mark.parametrize("rule", CARE_RULES)
def test_notice_text_has_a_heading_for_every_rule(rule: str) -> None:
    text = notice_text(rule, "内容")
    assert text.endswith("内容") and text.startswith("【") and text != "【小助手提醒】内容"
    assert notice_text("unknown", "内容") == "【小助手提醒】内容"


def test_windows_stay_within_the_rasa_session() -> None:
    conversation = yaml.safe_load((PROJECT_ROOT / "bot" / "domain" / "conversation.yml").read_text("utf-8"))
    session_minutes = conversation["session_config"]["session_expiration_time"]
    assert timedelta(minutes=session_minutes) >= VERIFIED_WINDOW
    assert timedelta(minutes=session_minutes) > ACTIVE_WINDOW
