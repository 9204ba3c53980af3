"""Staff sign-in through the API: `/api/auth/login`, bearer tokens, and who the chat says is talking.

The `database_url` fixture adds the admin `api_stubs.STAFF_ID` (password `STAFF_PASSWORD`) to every
test store; `staff_headers` adds more employees. Rasa is the in-process stub, so what the gateway
sends it (sender, metadata) is asserted exactly.
"""

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from api_stubs import (
    JWT_SECRET,
    STAFF_ID,
    STAFF_NAME,
    STAFF_PASSWORD,
    STAFF_PASSWORD_HASH,
    STAFF_TOKEN,
    StaffHeaders,
    StubServices,
)
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth import issue_token, load_or_create_secret, signing_secret
from api.errors import MESSAGES
from crm_store.accounts import OPERATOR, set_password, stamp_of
from crm_store.db import create_engine_for, make_session_factory
from crm_store.handoff import add_staff_reply, open_handoff
from crm_store.models import AuditLog, Employee
from crm_store.settings import ApiSettings

AUTH = {"Authorization": f"Bearer {STAFF_TOKEN}"}


@pytest.fixture
def crm_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def store(crm_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(crm_engine)


def login(client: TestClient, username: str = STAFF_ID, password: str = STAFF_PASSWORD) -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def me(client: TestClient, token: str) -> Any:
    return client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


# --- login ----------------------------------------------------------------------------------------


def test_login_answers_a_token_that_signs_later_requests_in(
    client: TestClient, settings: ApiSettings
) -> None:
    response = login(client)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert (body["employee_id"], body["role"], body["name"], body["region"]) == (
        STAFF_ID,
        "admin",
        STAFF_NAME,
        "全国",
    )
    assert body["expires_in"] == settings.token_ttl_s == 8 * 3600
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == STAFF_ID
    assert claims["exp"] - claims["iat"] == 8 * 3600
    assert claims["jti"]
    assert STAFF_PASSWORD not in str(claims)
    assert me(client, body["access_token"]).json() == {
        "employee_id": STAFF_ID,
        "role": "admin",
        "name": STAFF_NAME,
        "region": "全国",
    }
    assert login(client).json()["access_token"] != body["access_token"]


@pytest.mark.parametrize(
    ("username", "password"),
    [(STAFF_ID, "wrong-password"), ("E77", STAFF_PASSWORD), ("E77", "wrong-password")],
    ids=["wrong-password", "unknown-user", "both"],
)
def test_login_refuses_a_wrong_password_and_an_unknown_user_alike(
    client: TestClient, username: str, password: str
) -> None:
    response = login(client, username, password)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "工号或密码不正确"}


def test_login_locks_after_five_failures(client: TestClient, store: sessionmaker[Session]) -> None:
    statuses = [login(client, STAFF_ID, f"wrong-{n}").status_code for n in range(5)]

    locked = login(client)

    assert statuses == [401, 401, 401, 401, 423]
    assert locked.status_code == 423
    assert locked.json()["detail"].startswith("登录失败次数过多，账号已暂时锁定，请于 ")
    with store() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.entity == "employee")).all()
    assert actions == ["login_failed"] * 5 + ["login_refused_locked"]


def test_login_is_audited_with_the_employee(client: TestClient, store: sessionmaker[Session]) -> None:
    login(client)

    with store() as session:
        rows = session.execute(select(AuditLog.action, AuditLog.actor_id, AuditLog.detail)).all()
    assert [(action, actor) for action, actor, _ in rows] == [("login", STAFF_ID)]
    assert STAFF_PASSWORD not in str(rows)


@pytest.mark.parametrize(
    "body",
    [{}, {"username": STAFF_ID}, {"username": "", "password": "x"}, {"username": STAFF_ID, "password": 1}],
)
def test_login_needs_a_username_and_a_password(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/api/auth/login", json=body).status_code == 422


# --- tokens -----------------------------------------------------------------------------------------


def test_an_expired_token_is_refused(client: TestClient, settings: ApiSettings) -> None:
    issued = datetime.now(UTC) - timedelta(seconds=settings.token_ttl_s + 5)
    expired = issue_token(settings, STAFF_ID, stamp_of(STAFF_PASSWORD_HASH), now=issued).access_token

    response = me(client, expired)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": MESSAGES["token_expired"]}


def _tampered() -> list[str]:
    header, payload, signature = STAFF_TOKEN.split(".")
    claims = jwt.decode(STAFF_TOKEN, JWT_SECRET, algorithms=["HS256"])
    as_other = jwt.encode({**claims, "sub": "E01"}, JWT_SECRET + "-guess", algorithm="HS256")
    unsigned = jwt.encode({**claims}, None, algorithm="none")
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    return [
        as_other,
        unsigned,
        f"{header}.{payload}.{flipped}",
        f"{header}.{payload}x.{signature}",
        "not-a-jwt",
    ]


@pytest.mark.parametrize(
    "token", _tampered(), ids=["other-secret", "alg-none", "signature", "payload", "garbage"]
)
def test_a_tampered_token_is_refused(client: TestClient, token: str) -> None:
    response = me(client, token)

    assert response.status_code == 401
    assert response.json() == {"detail": MESSAGES["token_invalid"]}


def test_a_token_needs_every_claim(client: TestClient) -> None:
    now = datetime.now(UTC)
    without_stamp = jwt.encode(
        {"sub": STAFF_ID, "iat": now, "exp": now + timedelta(hours=1), "jti": "x"},
        JWT_SECRET,
        algorithm="HS256",
    )

    assert me(client, without_stamp).status_code == 401


def test_a_new_password_ends_the_sessions_signed_in_before(
    client: TestClient, store: sessionmaker[Session]
) -> None:
    token = login(client).json()["access_token"]
    assert me(client, token).status_code == 200

    with store.begin() as session:
        set_password(session, STAFF_ID, "a-brand-new-one", actor=OPERATOR)

    assert me(client, token).status_code == 401
    assert login(client, STAFF_ID, "a-brand-new-one").status_code == 200


def test_a_deleted_employee_is_signed_out_and_a_new_role_applies_at_once(
    client: TestClient, store: sessionmaker[Session], staff_headers: StaffHeaders
) -> None:
    headers = staff_headers("E70", role="sales", region="华北")
    assert client.get("/api/auth/me", headers=headers).json()["role"] == "sales"

    with store.begin() as session:
        employee = session.get(Employee, "E70")
        assert employee is not None
        employee.role, employee.region = "manager", "华南"
    assert client.get("/api/auth/me", headers=headers).json() | {"name": None} == {
        "employee_id": "E70",
        "role": "manager",
        "region": "华南",
        "name": None,
    }

    with store.begin() as session:
        session.delete(session.get(Employee, "E70"))
    assert client.get("/api/auth/me", headers=headers).status_code == 401


def test_me_needs_a_token(client: TestClient) -> None:
    response = client.get("/api/auth/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": MESSAGES["token_missing"]}


def test_the_signing_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "jwt-secret"

    first = load_or_create_secret(path)
    second = load_or_create_secret(path)

    assert first == second and len(first) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]
    unset = ApiSettings(jwt_secret=None)
    assert signing_secret(unset, secret_file=path) == first
    assert signing_secret(ApiSettings(jwt_secret=SecretStr("from-env")), secret_file=path) == "from-env"


# --- chat -------------------------------------------------------------------------------------------


def test_chat_with_a_staff_token_tells_rasa_the_role_from_the_token(
    client: TestClient, stubs: StubServices, staff_headers: StaffHeaders
) -> None:
    headers = staff_headers("E70", role="sales", region="华北")

    response = client.post(
        "/api/chat",
        json={
            "sender": "web-s1",
            "message": "查一下张伟的档案",
            "metadata": {"page": "chat", "channel": "web", "role": "admin", "principal_id": "E08"},
        },
        headers=headers,
    )

    assert response.status_code == 200
    assert stubs.webhook_calls == [
        {
            "sender": "staff:E70:web-s1",
            "message": "查一下张伟的档案",
            "metadata": {"page": "chat", "channel": "web", "role": "sales", "principal_id": "E70"},
        }
    ]


def test_chat_without_a_token_is_a_customer_whatever_the_body_says(
    client: TestClient, stubs: StubServices
) -> None:
    client.post(
        "/api/chat",
        json={
            "sender": "web-c1",
            "message": "查一下张伟的档案",
            "metadata": {"channel": "web", "role": "admin", "principal_id": "E08"},
        },
    )

    assert stubs.webhook_calls == [
        {
            "sender": "web-c1",
            "message": "查一下张伟的档案",
            "metadata": {"channel": "web", "role": "customer", "principal_id": None},
        }
    ]


@pytest.mark.parametrize("sender", ["staff:E08:web-s1", "STAFF:E08:x", "staff:"])
def test_a_customer_may_not_use_a_staff_conversation(
    client: TestClient, stubs: StubServices, sender: str
) -> None:
    response = client.post("/api/chat", json={"sender": sender, "message": "我的手机号是多少"})
    polled = client.get("/api/chat/updates", params={"sender": sender})

    assert response.status_code == polled.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "sender"]
    assert stubs.webhook_calls == []


@pytest.mark.parametrize("authorization", ["Bearer wrong-token", "Basic abc", STAFF_TOKEN, "Bearer "])
def test_chat_with_a_bad_authorization_header_is_refused_not_demoted(
    client: TestClient, stubs: StubServices, authorization: str
) -> None:
    response = client.post(
        "/api/chat", json={"sender": "web-s1", "message": "你好"}, headers={"Authorization": authorization}
    )

    assert response.status_code == 401
    assert stubs.webhook_calls == []


def test_staff_conversations_and_customer_ones_do_not_share_hand_off_replies(
    client: TestClient, store: sessionmaker[Session]
) -> None:
    with store.begin() as session:
        case = open_handoff(session, conversation="staff:E99:web-s1", reason="客户要求").case
        add_staff_reply(session, case_id=case.id, text="给员工的回复", staff_id=None)

    as_customer = client.get("/api/chat/updates", params={"sender": "web-s1"})
    as_staff = client.get("/api/chat/updates", params={"sender": "web-s1"}, headers=AUTH)

    assert as_customer.json() == []
    assert [m["text"] for m in as_staff.json()] == ["给员工的回复"]
