"""Hostile input at the doors that face the internet or a shop's files: `/api/chat`, sign-in and the
CSV import. Each gets a clear 4xx or a polite reply, and nothing is stored wrongly.

tests/api/test_chat.py covers the ordinary cases of the chat (empty, 2,000 characters, emoji, SQL
fragments forwarded intact, control characters, lone surrogates); here are the bodies a browser
never sends: bytes that are not UTF-8, JSON that is not JSON or not an object, wrong types, a
10,000-character message and sender, and what lands in the store during a hand-off, where the
customer's words are kept. The import tests run on SQLite and PostgreSQL (`session_factory`).
"""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_stubs import StubServices
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.gateway import EMPTY_MESSAGE_REPLY, TOO_LONG_REPLY
from crm_store.db import create_engine_for, make_session_factory
from crm_store.handoff import get_handoff, open_handoff
from crm_store.importer import import_csv_dir
from crm_store.models import AuditLog, Customer

SQL_FRAGMENTS = [
    "'; DROP TABLE customers; --",
    "1' OR '1'='1' --",
    'x"); DELETE FROM handoff_cases; --',
    "%' UNION SELECT phone FROM customers --",
]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def store(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine_for(database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def post_raw(client: TestClient, body: bytes, headers: dict[str, str] = JSON) -> Any:
    return client.post("/api/chat", content=body, headers=headers)


# --- bodies that are not what the schema says ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"sender": "web-u1", "message": "\xff\xfe\xe4\xbd"}',  # not UTF-8
        b'{"sender": "web-u1", "message": "\xc0\xaf"}',  # an overlong encoding of "/"
    ],
    ids=["invalid-utf8", "overlong-utf8"],
)
def test_a_body_that_is_not_utf8_is_a_400(client: TestClient, stubs: StubServices, body: bytes) -> None:
    response = post_raw(client, body)

    # FastAPI's own answer to a body it cannot decode, before any field is read.
    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}
    assert stubs.webhook_calls == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"sender": "web-u1", "message": "hi"',  # cut short
        b'{"sender": "web-u1", "message": "hi",}',  # trailing comma
        b"{'sender': 'web-u1', 'message': 'hi'}",  # Python, not JSON
        b'{"sender": "web-u1", "message": NaN}',
        b"",
        b"\x00\x00\x00",
    ],
    ids=["truncated", "trailing-comma", "single-quotes", "nan", "empty", "nul"],
)
def test_a_body_that_is_not_json_is_a_clear_422(client: TestClient, stubs: StubServices, body: bytes) -> None:
    response = post_raw(client, body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert stubs.webhook_calls == []


@pytest.mark.parametrize(
    "body",
    [[], "你好", 42, None, [{"sender": "web-u1", "message": "hi"}]],
    ids=["list", "string", "number", "null", "list-of-turns"],
)
def test_json_that_is_not_an_object_is_a_clear_422(
    client: TestClient, stubs: StubServices, body: Any
) -> None:
    response = post_raw(client, json.dumps(body).encode())

    assert response.status_code == 422
    assert stubs.webhook_calls == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message", 42),
        ("message", 4.2),
        ("message", True),
        ("message", None),
        ("message", ["你好"]),
        ("message", {"text": "你好"}),
        ("sender", ["web-u1"]),
        ("sender", {"id": "web-u1"}),
        ("metadata", ["web"]),
        ("metadata", "web"),
    ],
)
def test_a_wrong_type_is_a_422_naming_the_field(
    client: TestClient, stubs: StubServices, field: str, value: Any
) -> None:
    body: dict[str, Any] = {"sender": "web-u1", "message": "你好", field: value}

    response = client.post("/api/chat", json=body)

    assert response.status_code == 422
    assert ["body", field] in [problem["loc"] for problem in response.json()["detail"]]
    assert stubs.webhook_calls == []


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}, {}],
    ids=["text-plain", "form", "none"],
)
def test_a_body_that_is_not_declared_json_is_refused(
    client: TestClient, stubs: StubServices, headers: dict[str, str]
) -> None:
    response = post_raw(client, b'{"sender": "web-u1", "message": "hi"}', headers=headers)

    assert response.status_code == 422
    assert stubs.webhook_calls == []


def test_a_10000_character_message_gets_a_polite_reply_and_is_not_echoed(
    client: TestClient, stubs: StubServices
) -> None:
    response = client.post("/api/chat", json={"sender": "web-u1", "message": "查" * 10_000})

    assert response.status_code == 200
    assert response.json() == [{"text": TOO_LONG_REPLY.format(limit=2000)}]
    assert stubs.webhook_calls == []


def test_a_10000_character_sender_is_refused_without_echoing_it(
    client: TestClient, stubs: StubServices
) -> None:
    response = client.post("/api/chat", json={"sender": "a" * 10_000, "message": "你好"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "sender"]
    assert len(response.content) < 500
    assert stubs.webhook_calls == []


@pytest.mark.parametrize(
    "message",
    ["\u200b\u200b", "\u3000\u3000", "\ufeff", "\x00", "\u202e"],
    ids=["zero-width-spaces", "ideographic-spaces", "bom", "nul", "rtl-override"],
)
def test_invisible_messages_get_the_empty_message_reply(
    client: TestClient, stubs: StubServices, message: str
) -> None:
    response = client.post("/api/chat", json={"sender": "web-u1", "message": message})

    assert response.status_code == 200
    assert response.json() == [{"text": EMPTY_MESSAGE_REPLY}]
    assert stubs.webhook_calls == []


# --- what reaches the store -----------------------------------------------------------------------


def test_hostile_messages_during_a_hand_off_are_kept_as_text_and_harm_nothing(
    client: TestClient, stubs: StubServices, store: sessionmaker[Session]
) -> None:
    with store.begin() as session:
        case_id = open_handoff(session, conversation="web-h1", reason="客户要求").case.id
        customers_before = session.scalar(select(func.count()).select_from(Customer))
    sent = [*SQL_FRAGMENTS, "谢谢👍🏻👨‍👩‍👧", "第一行\x00\x1b[31m\r\n第二行", "", "好" * 10_000]

    statuses = [client.post("/api/chat", json={"sender": "web-h1", "message": m}).status_code for m in sent]

    assert statuses == [200] * len(sent)
    assert stubs.webhook_calls == []  # a person has the conversation: nothing reached Rasa
    with store() as session:
        case = get_handoff(session, case_id=case_id)
        assert case is not None and case.status == "open"
        kept = [entry.text for entry in case.transcript if entry.who == "customer"]
        assert session.scalar(select(func.count()).select_from(Customer)) == customers_before
    # Stored word for word, control characters dropped; the empty and the over-long one not at all.
    assert kept == [*SQL_FRAGMENTS, "谢谢👍🏻👨‍👩‍👧", "第一行[31m\n第二行"]


@pytest.mark.parametrize(
    "username",
    ["' OR '1'='1", "E99'; --", "😀", "E99\x00", "a" * 32, "工号"],
    ids=["sql-or", "sql-comment", "emoji", "nul", "32-chars", "hanzi"],
)
def test_hostile_employee_ids_are_a_plain_401_and_not_recorded(
    client: TestClient, store: sessionmaker[Session], username: str
) -> None:
    response = client.post("/api/auth/login", json={"username": username, "password": "whatever-1"})

    assert response.status_code == 401
    assert response.json() == {"detail": "工号或密码不正确"}
    with store() as session:
        rows = session.execute(select(AuditLog.action, AuditLog.entity_id)).all()
    assert [tuple(row) for row in rows] == [("login_failed", None)]


def test_an_employee_id_with_a_lone_surrogate_is_a_422_and_not_recorded(
    client: TestClient, store: sessionmaker[Session]
) -> None:
    # Only escaped JSON can carry one ("\\ud800"); the body's model refuses it before any lookup.
    body = json.dumps({"username": "E99\ud800", "password": "whatever-1"}).encode()

    response = client.post("/api/auth/login", content=body, headers=JSON)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "username"]
    with store() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"username": "a" * 10_000, "password": "x"},
        {"username": "E99", "password": "x" * 10_000},
        {"username": 99, "password": "x"},
        {"username": "E99", "password": ["x"]},
        {"username": "", "password": ""},
    ],
    ids=["long-username", "long-password", "number", "list", "empty"],
)
def test_sign_in_bodies_of_the_wrong_shape_are_a_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/api/auth/login", json=body)

    assert response.status_code == 422
    assert len(response.content) < 1000


# --- CSV import -----------------------------------------------------------------------------------

CUSTOMER_HEADER = (
    "customer_id,name,type,company,gender,birthday,phone,email,city,region,owner_id,channel_pref,"
    "opt_out,created_at,notes"
)


def customers_csv(tmp_path: Path, demo_dir: Path, rows: list[str]) -> Path:
    """A data directory with the demo's employees and a customers.csv of `rows` (bytes as given)."""
    data = tmp_path / "hostile"
    data.mkdir()
    shutil.copyfile(demo_dir / "employees.csv", data / "employees.csv")
    (data / "employees.csv").chmod(0o644)
    body = "\n".join([CUSTOMER_HEADER, *rows]) + "\n"
    (data / "customers.csv").write_bytes(body.encode("utf-8", "surrogateescape"))
    return data


def test_sql_fragments_emoji_and_control_characters_in_a_csv_are_stored_as_text(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = customers_csv(
        tmp_path,
        demo_dir,
        [
            "H001,\"Robert'); DROP TABLE customers; --\",个人,,,,,,上海,华东,E02,,0,,\"1' OR '1'='1\"",
            "H002,王小明😀,个人,,,,,,北京,华北,E02,,0,,爱喝咖啡☕",
            'H003,李\x00四\x1b,个人,,,,,,广州,华南,E02,,0,,"第一行\x07\n第二行"',
        ],
    )

    report = import_csv_dir(session_factory, data)

    assert report.ok, [str(e) for e in report.errors]
    with session_factory() as session:
        stored = {c.customer_id: (c.name, c.notes) for c in session.scalars(select(Customer))}
    assert stored == {
        "H001": ("Robert'); DROP TABLE customers; --", "1' OR '1'='1"),
        "H002": ("王小明😀", "爱喝咖啡☕"),
        "H003": ("李四", "第一行\n第二行"),
    }


def test_bad_rows_of_a_hostile_csv_are_rejected_with_reasons_and_not_stored(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = customers_csv(
        tmp_path,
        demo_dir,
        [
            "H001,正常客户,个人,,,,,,上海,华东,E02,,0,,",
            "H002," + "长" * 10_000 + ",个人,,,,,,上海,华东,E02,,0,,",
            "H003,,个人,,,,,,上海,华东,E02,,0,,",
            "' OR 1=1 --,注入,个人,,,,,,上海,华东,E02,,0,,",
            "H005,类型错,VIP,,,,,,上海,华东,E02,,0,,",
            "H006,退订错,个人,,,,,,上海,华东,E02,,maybe,,",
            "H007,列太少,个人",
        ],
    )

    report = import_csv_dir(session_factory, data)

    lines = sorted(error.line for error in report.errors if error.file == "customers.csv")
    assert lines == [3, 4, 5, 6, 7, 8]
    assert all("长" * 20 not in str(error) for error in report.errors)
    with session_factory() as session:
        assert list(session.scalars(select(Customer.customer_id))) == ["H001"]
