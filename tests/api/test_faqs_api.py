"""Staff endpoints of the FAQ knowledge base: `/api/faqs`, `/api/faq/unanswered`, `/api/faq/stats`.

The app is the real one on a temporary SQLite store; questions and votes are recorded through
`crm_store.faqs`, as the bot's actions do.
"""

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_stubs import STAFF_TOKEN
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.errors import MESSAGES, message_for
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import Conflict, CrmError, Invalid, NotFound
from crm_store.faqs import faq_revision, record_feedback, record_unanswered
from crm_store.importer import FAQ_REASONS, import_csv_dir
from crm_store.vocab import UNANSWERED_STATUSES

AUTH = {"Authorization": f"Bearer {STAFF_TOKEN}"}
NEW_FAQ = {
    "category": "发票",
    "question": "可以开收据吗？",
    "answer": "可以，在订单详情中点击“申请开票”。",
    "alt_questions": ["能开收据吗", "收据怎么开"],
}


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


@pytest.fixture
def demo(store: sessionmaker[Session], demo_dir: Path) -> sessionmaker[Session]:
    assert import_csv_dir(store, demo_dir).ok
    return store


def ask(store: sessionmaker[Session], question: str, times: int = 1) -> int:
    """Record a question the assistant could not answer, as the bot does."""
    row_id = None
    for _ in range(times):
        with store.begin() as session:
            row = record_unanswered(session, question)
            assert row is not None
            row_id = row.id
    assert row_id is not None
    return row_id


class KnowledgeStub:
    """Stands in for the retrieval engine: remembers the revision it saw on each notice."""

    def __init__(self, store: sessionmaker[Session]) -> None:
        self.store = store
        self.seen: list[str] = []

    def notify_changed(self) -> None:
        with self.store() as session:
            self.seen.append(faq_revision(session))


# --- access -------------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/faqs"),
    ("GET", "/api/faqs/F001"),
    ("POST", "/api/faqs"),
    ("PUT", "/api/faqs/F001"),
    ("PATCH", "/api/faqs/F001"),
    ("DELETE", "/api/faqs/F001"),
    ("GET", "/api/faq/unanswered"),
    ("POST", "/api/faq/unanswered/1/resolve"),
    ("POST", "/api/faq/unanswered/1/dismiss"),
    ("GET", "/api/faq/stats"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
def test_every_endpoint_needs_the_staff_token(
    client: TestClient, demo: sessionmaker[Session], method: str, path: str, headers: dict[str, str]
) -> None:
    with demo() as session:
        before = faq_revision(session)

    response = client.request(method, path, headers=headers, json=NEW_FAQ)

    assert response.status_code == 401
    assert response.json()["detail"] in {MESSAGES["token_missing"], MESSAGES["token_invalid"]}
    with demo() as session:
        assert faq_revision(session) == before


def test_endpoints_are_documented_under_the_faqs_tag(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in ENDPOINTS:
        template = path.replace("F001", "{faq_id}").replace("/1/", "/{unanswered_id}/")
        assert paths[template][method.lower()]["tags"] == ["faqs"]


# --- FAQs ---------------------------------------------------------------------------------------


def test_faq_round_trip(client: TestClient, demo: sessionmaker[Session]) -> None:
    created = client.post("/api/faqs", json=NEW_FAQ, headers=AUTH)
    assert created.status_code == 201
    body = created.json()
    assert body["faq_id"] == "F025"
    assert {k: body[k] for k in NEW_FAQ} == NEW_FAQ
    assert body["updated_at"].endswith("+08:00")

    listed = client.get("/api/faqs", headers=AUTH).json()
    assert [faq["faq_id"] for faq in listed][-3:] == ["F023", "F024", "F025"]
    assert client.get("/api/faqs/F025", headers=AUTH).json() == body

    changed = client.put("/api/faqs/F025", json={"answer": "可以开收据。"}, headers=AUTH)
    assert changed.status_code == 200
    assert changed.json()["answer"] == "可以开收据。"
    assert changed.json()["alt_questions"] == ["能开收据吗", "收据怎么开"]

    patched = client.patch("/api/faqs/F025", json={"category": None, "alt_questions": []}, headers=AUTH)
    assert (patched.json()["category"], patched.json()["alt_questions"]) == (None, [])
    assert patched.json()["question"] == "可以开收据吗？"

    deleted = client.delete("/api/faqs/F025", headers=AUTH)
    assert deleted.status_code == 204
    assert deleted.content == b""
    missing = client.get("/api/faqs/F025", headers=AUTH)
    assert (missing.status_code, missing.json()) == (404, {"detail": "FAQ F025 不存在"})


def test_create_under_a_chosen_id(client: TestClient, demo: sessionmaker[Session]) -> None:
    response = client.post("/api/faqs", json={**NEW_FAQ, "faq_id": "F500"}, headers=AUTH)
    assert (response.status_code, response.json()["faq_id"]) == (201, "F500")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/faqs/F099"), ("PUT", "/api/faqs/F099"), ("DELETE", "/api/faqs/F099")]
)
def test_unknown_faq_is_404_in_chinese(
    client: TestClient, demo: sessionmaker[Session], method: str, path: str
) -> None:
    response = client.request(method, path, json={"answer": "答"}, headers=AUTH)
    assert (response.status_code, response.json()) == (404, {"detail": "FAQ F099 不存在"})


def test_taken_id_is_409_in_chinese(client: TestClient, demo: sessionmaker[Session]) -> None:
    response = client.post("/api/faqs", json={**NEW_FAQ, "faq_id": "F001"}, headers=AUTH)
    assert (response.status_code, response.json()) == (409, {"detail": "FAQ 编号 F001 已存在"})
    assert client.get("/api/faqs/F001", headers=AUTH).json()["question"] == "怎么申请退货？"


@pytest.mark.parametrize(
    ("change", "loc", "msg"),
    [
        ({"question": "问" * 201}, ["body", "question"], "问题不能超过 200 字"),
        ({"answer": "  "}, ["body", "answer"], "答案不能为空"),
        ({"alt_questions": ["退货|换货"]}, ["body", "alt_questions"], "第 1 条备选问法不能包含“|”"),
        ({"alt_questions": [f"问{i}" for i in range(31)]}, ["body", "alt_questions"], "备选问法最多 30 条"),
        ({"faq_id": "F 1"}, ["body", "faq_id"], "FAQ 编号格式不对：只能含字母、数字、-、_、.，最长 32 位"),
        ({"answer": None}, ["body", "answer"], "应为文本"),
        ({"alt_questions": "如何退货"}, ["body", "alt_questions"], "应为列表"),
        ({"alt_question": ["如何退货"]}, ["body", "alt_question"], "不认识的字段"),
    ],
)
def test_invalid_faq_is_422_in_chinese(
    client: TestClient, demo: sessionmaker[Session], change: dict[str, Any], loc: list[str], msg: str
) -> None:
    response = client.post("/api/faqs", json={**NEW_FAQ, **change}, headers=AUTH)

    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"loc": loc, "msg": msg, "type": response.json()["detail"][0]["type"]}]
    }
    assert client.get("/api/faqs/F025", headers=AUTH).status_code == 404


def test_missing_fields_and_broken_json_are_422_in_chinese(
    client: TestClient, demo: sessionmaker[Session]
) -> None:
    missing = client.post("/api/faqs", json={"question": "可以开收据吗？"}, headers=AUTH)
    assert missing.status_code == 422
    assert missing.json()["detail"] == [{"loc": ["body", "answer"], "msg": "缺少必填字段", "type": "missing"}]

    broken = client.post(
        "/api/faqs", content=b'{"question": ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert [error["msg"] for error in broken.json()["detail"]] == ["请求体不是有效的 JSON"]
    assert "Traceback" not in broken.text


def test_update_to_an_invalid_value_changes_nothing(client: TestClient, demo: sessionmaker[Session]) -> None:
    before = client.get("/api/faqs/F001", headers=AUTH).json()
    response = client.patch("/api/faqs/F001", json={"question": "", "answer": "新答案"}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "问题不能为空"
    assert client.get("/api/faqs/F001", headers=AUTH).json() == before


# --- the knowledge index hears of changes ---------------------------------------------------------


def test_every_write_notifies_the_knowledge_index_after_commit(
    app: FastAPI, client: TestClient, demo: sessionmaker[Session]
) -> None:
    knowledge = KnowledgeStub(demo)
    app.state.knowledge = knowledge
    with demo() as session:
        start = faq_revision(session)

    client.post("/api/faqs", json=NEW_FAQ, headers=AUTH)
    client.put("/api/faqs/F025", json={"answer": "可以开收据。"}, headers=AUTH)
    client.delete("/api/faqs/F025", headers=AUTH)
    row_id = ask(demo, "周末发货吗")
    client.post(f"/api/faq/unanswered/{row_id}/resolve", json={"answer": "周末照常发货。"}, headers=AUTH)
    # Reads and refused writes say nothing.
    client.get("/api/faqs", headers=AUTH)
    client.post("/api/faqs", json={**NEW_FAQ, "faq_id": "F001"}, headers=AUTH)

    assert len(knowledge.seen) == 4
    # Each notice came after its commit: the index could already read the new revision.
    assert len({start, *knowledge.seen}) == 5


def test_an_async_notice_is_awaited(app: FastAPI, client: TestClient, demo: sessionmaker[Session]) -> None:
    notices: list[str] = []

    class AsyncKnowledge:
        async def notify_changed(self) -> None:
            notices.append("changed")

    app.state.knowledge = AsyncKnowledge()
    assert client.post("/api/faqs", json=NEW_FAQ, headers=AUTH).status_code == 201
    assert notices == ["changed"]


def test_a_failing_notice_does_not_fail_the_write(
    app: FastAPI, client: TestClient, demo: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenKnowledge:
        def notify_changed(self) -> None:
            raise RuntimeError("index busy at /var/knowledge/faqs.index")

    app.state.knowledge = BrokenKnowledge()
    with caplog.at_level(logging.WARNING, logger="api.routes.faqs"):
        response = client.post("/api/faqs", json=NEW_FAQ, headers=AUTH)

    assert response.status_code == 201
    assert client.get("/api/faqs/F025", headers=AUTH).status_code == 200
    warnings = [record for record in caplog.records if record.name == "api.routes.faqs"]
    assert [record.getMessage() for record in warnings] == [
        "知识索引未能收到 FAQ 变更通知（RuntimeError），将由轮询补上"
    ]
    assert all(record.exc_info is None for record in warnings)


# --- the unanswered queue -------------------------------------------------------------------------


def test_unanswered_list_most_asked_first_with_personal_data_masked(
    client: TestClient, demo: sessionmaker[Session]
) -> None:
    ask(demo, "周末发货吗", times=3)
    ask(demo, "我的手机13800001111收不到验证码", times=2)
    ask(demo, "有实体店吗")

    response = client.get("/api/faq/unanswered", headers=AUTH)

    assert response.status_code == 200
    items = response.json()
    assert [(item["question"], item["count"], item["status"]) for item in items] == [
        ("周末发货吗", 3, "open"),
        ("我的手机138****1111收不到验证码", 2, "open"),
        ("有实体店吗", 1, "open"),
    ]
    assert set(items[0]) == {
        "id",
        "question",
        "count",
        "first_asked_at",
        "last_asked_at",
        "status",
        "resolved_faq_id",
    }
    assert "13800001111" not in response.text
    assert len(client.get("/api/faq/unanswered", params={"limit": 1}, headers=AUTH).json()) == 1


@pytest.mark.parametrize(
    ("params", "msg"),
    [({"limit": 0}, "应不小于 1"), ({"limit": 501}, "应不大于 500"), ({"status": "closed"}, "取值只能是")],
)
def test_unanswered_list_refuses_bad_parameters_in_chinese(
    client: TestClient, demo: sessionmaker[Session], params: dict[str, Any], msg: str
) -> None:
    response = client.get("/api/faq/unanswered", params=params, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith(msg)


def test_resolve_into_a_new_faq(client: TestClient, demo: sessionmaker[Session]) -> None:
    row_id = ask(demo, "你们周末发货吗？", times=2)

    response = client.post(
        f"/api/faq/unanswered/{row_id}/resolve",
        json={"answer": "周末照常发货。", "category": "物流"},
        headers=AUTH,
    )

    assert response.status_code == 201
    faq = response.json()
    assert (faq["faq_id"], faq["question"], faq["answer"], faq["category"]) == (
        "F025",
        "你们周末发货吗？",
        "周末照常发货。",
        "物流",
    )
    assert client.get("/api/faq/unanswered", headers=AUTH).json() == []
    (resolved,) = client.get("/api/faq/unanswered", params={"status": "resolved"}, headers=AUTH).json()
    assert (resolved["id"], resolved["resolved_faq_id"], resolved["count"]) == (row_id, "F025", 2)

    again = client.post(f"/api/faq/unanswered/{row_id}/resolve", json={"answer": "再答一次"}, headers=AUTH)
    assert again.status_code == 409
    assert again.json() == {"detail": f"待解答问题 {row_id} 已解决（FAQ F025）"}


def test_resolve_into_an_existing_faq(client: TestClient, demo: sessionmaker[Session]) -> None:
    row_id = ask(demo, "东西不想要了能退吗")

    response = client.post(f"/api/faq/unanswered/{row_id}/resolve", json={"faq_id": "F001"}, headers=AUTH)

    assert response.status_code == 201
    assert response.json()["faq_id"] == "F001"
    assert response.json()["alt_questions"][-1] == "东西不想要了能退吗"
    assert client.get("/api/faqs/F001", headers=AUTH).json()["alt_questions"][-1] == "东西不想要了能退吗"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            {},
            422,
            [{"loc": ["body", "answer"], "msg": "请提供答案（新建 FAQ），或已有 FAQ 的编号（加为备选问法）"}],
        ),
        ({"faq_id": "F099"}, 404, "FAQ F099 不存在"),
        ({"faq_id": "F001", "answer": "答"}, 409, "FAQ F001 已存在：要加为它的备选问法，请不要同时提供答案"),
    ],
)
def test_resolve_refusals_in_chinese(
    client: TestClient, demo: sessionmaker[Session], body: dict[str, Any], status: int, detail: Any
) -> None:
    row_id = ask(demo, "周末发货吗")

    response = client.post(f"/api/faq/unanswered/{row_id}/resolve", json=body, headers=AUTH)

    assert response.status_code == status
    got = response.json()["detail"]
    if isinstance(detail, list):
        got = [{k: error[k] for k in ("loc", "msg")} for error in got]
    assert got == detail
    assert len(client.get("/api/faq/unanswered", headers=AUTH).json()) == 1


def test_unknown_queued_question_is_404(client: TestClient, demo: sessionmaker[Session]) -> None:
    for action in ("resolve", "dismiss"):
        response = client.post(f"/api/faq/unanswered/999/{action}", json={"answer": "答"}, headers=AUTH)
        assert (response.status_code, response.json()) == (404, {"detail": "待解答问题 999 不存在"})


def test_dismiss(client: TestClient, demo: sessionmaker[Session]) -> None:
    row_id = ask(demo, "你好笨")

    response = client.post(f"/api/faq/unanswered/{row_id}/dismiss", headers=AUTH)

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (row_id, "dismissed")
    assert client.get("/api/faq/unanswered", headers=AUTH).json() == []
    dismissed = client.get("/api/faq/unanswered", params={"status": "dismissed"}, headers=AUTH).json()
    assert [item["question"] for item in dismissed] == ["你好笨"]


# --- statistics -----------------------------------------------------------------------------------


def test_stats(client: TestClient, demo: sessionmaker[Session]) -> None:
    with demo.begin() as session:
        record_feedback(session, "F001", True, sender_id="web-a")
        record_feedback(session, "F001", True, sender_id="web-b")
        record_feedback(session, "F001", False, sender_id="web-c")
        record_feedback(session, "F002", False, sender_id="web-a")
    ask(demo, "周末发货吗", times=2)

    response = client.get("/api/faq/stats", headers=AUTH)

    assert response.status_code == 200
    stats = response.json()
    assert (stats["helpful"], stats["unhelpful"], stats["helpful_rate"]) == (2, 2, 0.5)
    assert (stats["unanswered_asks"], stats["unanswered_open"]) == (2, 1)
    assert [(s["faq_id"], s["helpful"], s["unhelpful"]) for s in stats["faqs"]] == [
        ("F001", 2, 1),
        ("F002", 0, 1),
    ]
    assert stats["faqs"][1]["question"] == "换货怎么办理？"


def test_stats_of_an_empty_store(client: TestClient) -> None:
    response = client.get("/api/faq/stats", headers=AUTH)
    assert response.json() == {
        "helpful": 0,
        "unhelpful": 0,
        "helpful_rate": None,
        "unanswered_asks": 0,
        "unanswered_open": 0,
        "faqs": [],
    }


# --- the words of every refusal -------------------------------------------------------------------

# Each code crm_store.faqs and crm_store.faq_rules raise, with the data they raise it with, and the
# sentence staff have always read for it.
WORDING = [
    (NotFound("faq_not_found", faq_id="F099"), "FAQ F099 不存在"),
    (Conflict("faq_id_taken", faq_id="F001"), "FAQ 编号 F001 已存在"),
    (NotFound("unanswered_not_found", unanswered_id=999), "待解答问题 999 不存在"),
    (
        Conflict("unanswered_already_resolved", unanswered_id=7, faq_id="F025"),
        "待解答问题 7 已解决（FAQ F025）",
    ),
    (Conflict("unanswered_resolved_by_deleted_faq", unanswered_id=7), "待解答问题 7 已解决（FAQ 已删除）"),
    (Conflict("unanswered_resolved_not_dismissable", unanswered_id=7), "待解答问题 7 已解决，不能再忽略"),
    (
        Conflict("faq_exists_answer_given", faq_id="F001"),
        "FAQ F001 已存在：要加为它的备选问法，请不要同时提供答案",
    ),
    (
        Invalid("category_only_for_new_faq", field="category"),
        "分类只用于新建 FAQ；要改已有 FAQ 的分类，请编辑该 FAQ",
    ),
    (
        Invalid("resolve_needs_answer_or_faq", field="answer"),
        "请提供答案（新建 FAQ），或已有 FAQ 的编号（加为备选问法）",
    ),
    (
        Invalid("unanswered_status_unknown", field="status", allowed=UNANSWERED_STATUSES),
        "状态只能是 open、resolved、dismissed",
    ),
    (Invalid("unanswered_limit_out_of_range", field="limit", min=1, max=500), "limit 应在 1 到 500 之间"),
    (
        Invalid("faq_id_invalid", field="faq_id", max_chars=32),
        "FAQ 编号格式不对：只能含字母、数字、-、_、.，最长 32 位",
    ),
    (Invalid("faq_question_empty", field="question"), "问题不能为空"),
    (Invalid("faq_question_too_long", field="question", max_chars=200), "问题不能超过 200 字"),
    (Invalid("faq_answer_empty", field="answer"), "答案不能为空"),
    (Invalid("faq_answer_too_long", field="answer", max_chars=2000), "答案不能超过 2000 字"),
    (Invalid("faq_category_too_long", field="category", max_chars=32), "分类不能超过 32 字"),
    (
        Invalid("faq_alt_question_has_separator", field="alt_questions", position=1, separator="|"),
        "第 1 条备选问法不能包含“|”",
    ),
    (
        Invalid("faq_alt_question_too_long", field="alt_questions", position=2, max_chars=200),
        "第 2 条备选问法不能超过 200 字",
    ),
    (Invalid("faq_alt_questions_too_many", field="alt_questions", max_count=30), "备选问法最多 30 条"),
]


@pytest.mark.parametrize(("error", "sentence"), WORDING, ids=[error.code for error, _ in WORDING])
def test_every_faq_refusal_is_worded_as_before(error: CrmError, sentence: str) -> None:
    assert message_for(error) == sentence


def test_an_import_report_words_the_faq_rules_as_the_api_does() -> None:
    rule_codes = [
        error.code for error, _ in WORDING if error.code.startswith("faq_") and error.code in FAQ_REASONS
    ]
    assert len(rule_codes) == 9
    for code in rule_codes:
        assert FAQ_REASONS[code] == MESSAGES[code]
