"""`/api/customers` through real staff tokens: search, the 360 JSON, updates, scope and audit."""

from typing import Any

import pytest
from api_stubs import STAFF_PASSWORD, Headers
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.models import AuditLog, Customer


def _view(client: TestClient, headers: dict[str, str], customer_id: str) -> Any:
    return client.get(f"/api/customers/{customer_id}", headers=headers)


# -- authorisation: every endpoint, every kind of caller ---------------------------------------------

ENDPOINTS = [
    ("GET", "/api/customers?q=张伟", None),
    ("GET", "/api/customers/C0001", None),
    ("PATCH", "/api/customers/C0001", {"city": "杭州"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_needs_a_staff_sign_in(
    client: TestClient, demo: sessionmaker[Session], method: str, path: str, body: dict[str, str] | None
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401
        assert "登录" in response.json()["detail"]
    with demo() as session:
        customer = session.get(Customer, "C0001")
        assert customer is not None and customer.city == "上海"
        assert session.scalars(select(AuditLog).where(AuditLog.entity == "customer")).all() == []


def test_a_login_token_reads_the_360_view(client: TestClient, demo: sessionmaker[Session]) -> None:
    login = client.post("/api/auth/login", json={"username": "E02", "password": STAFF_PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    response = _view(client, headers, "C0001")
    assert response.status_code == 200
    body = response.json()
    assert body["profile"]["name"] == "张伟"
    # E02 owns 张伟: the phone in full.
    assert body["profile"]["phone"] == "18201164104"
    assert body["url"] == "/customers/C0001"
    # Value and risk: not scored by a refresh yet, so computed now and without RFM scores; 张伟
    # bought five days ago, far from lapsing.
    assert body["rfm"] == {"recency": None, "frequency": None, "monetary": None}
    assert body["scores_as_of"] is None
    assert 0 < body["churn_risk"] < 0.5 and body["clv"] > 0 and body["value_tier"] == "小客户"


def test_scope_as_the_issue_checks_it(client: TestClient, as_: Headers) -> None:
    # E02 (sales 华东) asking for 王芳 gets nothing of her.
    refused = _view(client, as_("E02"), "C0003")
    assert refused.status_code == 404
    assert "王芳" not in refused.text and "华峰" not in refused.text
    assert client.get("/api/customers", params={"q": "王芳"}, headers=as_("E02")).json() == []
    # Manager E01 (华东) sees 张伟 but not 王芳 (华北); admin E08 sees both.
    assert _view(client, as_("E01"), "C0001").status_code == 200
    assert _view(client, as_("E01"), "C0003").status_code == 404
    assert _view(client, as_("E08"), "C0001").status_code == 200
    assert _view(client, as_("E08"), "C0003").status_code == 200
    # Service E06 sees only customers of tickets assigned to them.
    assert _view(client, as_("E06"), "C0001").status_code == 200
    assert _view(client, as_("E06"), "C0003").status_code == 404
    # Another salesperson (E03) may not change 张伟.
    assert client.patch("/api/customers/C0001", json={"city": "天津"}, headers=as_("E03")).status_code == 404


def test_out_of_scope_reads_like_a_missing_id(client: TestClient, as_: Headers) -> None:
    hidden = _view(client, as_("E02"), "C0003")
    missing = _view(client, as_("E02"), "C9999")
    assert hidden.json()["detail"] == "客户 C0003 不存在"
    assert missing.json()["detail"] == "客户 C9999 不存在"


def test_the_360_json_masks_contact_for_others_and_is_audited(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    body = _view(client, as_("E01"), "C0001").json()
    assert body["profile"]["phone"] == "182****4104"
    assert body["profile"]["email"] == "c0***@example.com"
    assert body["profile"]["contact_masked"] is True
    assert [t["ticket_id"] for t in body["open_tickets"]] == ["T09001"]
    assert len(body["recent_orders"]) == 3
    assert body["next_birthday"] == "2026-11-25"
    assert "靠窗" in body["notes"]
    with demo() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.action == "view_customer")).one()
        assert (row.actor_id, row.entity_id) == ("E01", "C0001")
        assert "18201164104" not in str(row.detail)


def test_search_ranks_and_masks(client: TestClient, as_: Headers) -> None:
    response = client.get("/api/customers", params={"q": "王总"}, headers=as_("E03"))
    assert response.status_code == 200
    matches = response.json()
    assert [m["customer_id"] for m in matches] == ["C0003", "C0043"]
    assert matches[0]["phone"] == "172****3406"
    assert (
        client.get("/api/customers", params={"q": "华峰科技的王芳"}, headers=as_("E03")).json()[0]["name"]
        == "王芳"
    )
    assert client.get("/api/customers", params={"q": ""}, headers=as_("E03")).status_code == 422


def test_patch_updates_audits_and_names_only_the_fields(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    response = client.patch(
        "/api/customers/C0001",
        json={"phone": "139-1234-5678", "city": "杭州市", "add_preference": "喜欢拿铁"},
        headers=as_("E02"),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"customer_id": "C0001", "changed": ["phone", "city", "preferences"]}
    assert "13912345678" not in response.text
    with demo() as session:
        customer = session.get(Customer, "C0001")
        assert customer is not None
        assert (customer.phone, customer.city, customer.preferences) == ("13912345678", "杭州", "喜欢拿铁")
        row = session.scalars(select(AuditLog).where(AuditLog.action == "update_customer")).one()
        assert row.actor_id == "E02"
    view = _view(client, as_("E02"), "C0001").json()
    assert view["preferences"] == ["喜欢拿铁"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"phone": "12345"}, "phone", "手机号格式不对"),
        ({"birthday": "2030-01-01"}, "birthday", "生日不能晚于今天"),
        ({"birthday": "1990-02-30"}, "birthday", "生日不是有效日期"),
        ({"email": "nope"}, "email", "电子邮箱格式不对"),
    ],
)
def test_an_invalid_value_is_422_naming_the_field_and_saves_nothing(
    client: TestClient,
    as_: Headers,
    demo: sessionmaker[Session],
    body: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = client.patch("/api/customers/C0001", json={**body, "city": "杭州"}, headers=as_("E02"))
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert message in problem["msg"]
    with demo() as session:
        customer = session.get(Customer, "C0001")
        assert customer is not None and customer.city == "上海"


def test_patch_refuses_fields_that_are_not_updatable(client: TestClient, as_: Headers) -> None:
    response = client.patch("/api/customers/C0001", json={"name": "李四"}, headers=as_("E02"))
    assert response.status_code == 422
    both = client.patch(
        "/api/customers/C0001", json={"preferences": ["a"], "add_preference": "b"}, headers=as_("E02")
    )
    assert both.status_code == 422
