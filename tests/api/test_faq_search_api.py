"""`GET /api/faq/search` with the real knowledge base, and staff edits it sees at once."""

import time
from pathlib import Path

import pytest
from api_stubs import STAFF_TOKEN
from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {STAFF_TOKEN}"}


@pytest.fixture(autouse=True)
def knowledge_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "knowledge"
    monkeypatch.setenv("KNOWLEDGE_DIR", str(directory))
    return directory


def _search_when_loaded(client: TestClient, question: str) -> dict[str, object]:
    """The first search starts loading the encoder and answers 503 until it is ready."""
    deadline = time.monotonic() + 120
    while True:
        response = client.get("/api/faq/search", params={"q": question})
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        assert response.json()["detail"] == "知识库正在加载，请几秒后再试。"
        assert response.headers["Retry-After"] == "5"
        time.sleep(0.5)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_faq_added_by_staff_is_found_at_once(client: TestClient) -> None:
    assert _search_when_loaded(client, "能开收据吗") == {"decision": "none", "hits": []}

    created = client.post(
        "/api/faqs",
        json={
            "question": "可以开收据吗？",
            "answer": "可以，在订单详情中申请。",
            "alt_questions": ["收据怎么开"],
        },
        headers=AUTH,
    )
    assert created.status_code == 201

    body = client.get("/api/faq/search", params={"q": "收据能开吗", "top_k": 3}).json()
    assert body["decision"] == "answer"
    assert body["hits"][0]["faq_id"] == created.json()["faq_id"]
    assert body["hits"][0]["answer"] == "可以，在订单详情中申请。"
    assert set(body["hits"][0]) == {"faq_id", "score", "question", "answer"}

    client.delete(f"/api/faqs/{created.json()['faq_id']}", headers=AUTH)
    assert client.get("/api/faq/search", params={"q": "收据能开吗"}).json()["hits"] == []


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_refused_in_chinese(client: TestClient, question: str) -> None:
    response = client.get("/api/faq/search", params={"q": question})
    assert response.status_code == 422
    assert response.json()["detail"] == "请输入要检索的问题。"


def test_an_over_long_question_is_refused_in_chinese(client: TestClient) -> None:
    response = client.get("/api/faq/search", params={"q": "退" * 2001})
    assert response.status_code == 422
    assert "2000" in response.json()["detail"]


def test_a_missing_encoder_is_a_503_not_a_stack_trace(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWLEDGE_MODEL", str(tmp_path / "no-such-model"))
    deadline = time.monotonic() + 30
    response = client.get("/api/faq/search", params={"q": "发票怎么开"})
    while response.json()["detail"] == "知识库正在加载，请几秒后再试。" and time.monotonic() < deadline:
        time.sleep(0.2)
        response = client.get("/api/faq/search", params={"q": "发票怎么开"})
    assert response.status_code == 503
    assert response.json()["detail"] == "知识库暂时不可用，请联系管理员查看服务日志。"
