"""`/api/opportunities` through real staff tokens: 我的商机, create, move, amount, lost, scope."""

import pytest
from api_stubs import Headers
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.models import AuditLog, Opportunity, OpportunityStageChange


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/opportunities", None),
        ("POST", "/api/opportunities", {"customer_id": "C0003", "name": "三期", "amount": 1000}),
        ("PATCH", "/api/opportunities/OP001", {"stage": "谈判"}),
    ],
)
def test_every_endpoint_needs_a_staff_sign_in(
    client: TestClient, demo: sessionmaker[Session], method: str, path: str, body: object
) -> None:
    assert client.request(method, path, json=body).status_code == 401
    with demo() as session:
        assert session.get(Opportunity, "OP001").stage == "报价"  # type: ignore[union-attr]
        assert session.scalars(select(Opportunity).where(Opportunity.name == "三期")).all() == []


def test_my_pipeline(client: TestClient, as_: Headers) -> None:
    body = client.get("/api/opportunities", headers=as_("E03")).json()
    # OP003 is on E03's customer C0008 but owned by E04: "我的商机" lists what one owns.
    assert [o["opportunity_id"] for o in body["items"]] == ["OP001"]
    assert body["items"][0]["weighted_amount"] == 49000.0
    assert (body["total_amount"], body["weighted_total"]) == (98000.0, 49000.0)
    e04 = client.get("/api/opportunities", headers=as_("E04")).json()
    assert [(o["opportunity_id"], o["weighted_amount"]) for o in e04["items"]] == [("OP003", 26600.0)]
    # E02 sees only their own; a service agent has no pipeline.
    assert [
        o["opportunity_id"] for o in client.get("/api/opportunities", headers=as_("E02")).json()["items"]
    ] == ["OP002"]
    assert client.get("/api/opportunities", headers=as_("E06")).status_code == 403
    found = client.get("/api/opportunities", params={"q": "华峰科技"}, headers=as_("E03")).json()
    assert [o["opportunity_id"] for o in found["items"]] == ["OP001"]


def test_create_move_and_close_lost(client: TestClient, as_: Headers, demo: sessionmaker[Session]) -> None:
    created = client.post(
        "/api/opportunities",
        json={"customer_id": "C0003", "name": "运维服务", "amount": "120000", "expected_close": "2027-03-31"},
        headers=as_("E03"),
    )
    assert created.status_code == 201, created.text
    opportunity = created.json()
    assert (opportunity["stage"], opportunity["owner_id"], opportunity["probability"]) == ("线索", "E03", 10)
    oid = opportunity["opportunity_id"]
    moved = client.patch(
        f"/api/opportunities/{oid}", json={"stage": "报价", "amount": 150000}, headers=as_("E03")
    )
    assert moved.status_code == 200
    assert (moved.json()["stage"], moved.json()["amount"], moved.json()["weighted_amount"]) == (
        "报价",
        150000.0,
        75000.0,
    )
    lost = client.patch(f"/api/opportunities/{oid}", json={"lost_reason": "预算取消"}, headers=as_("E03"))
    assert (lost.json()["stage"], lost.json()["lost_reason"]) == ("输单", "预算取消")
    assert [h["to_stage"] for h in lost.json()["history"]] == ["线索", "报价", "输单"]
    again = client.patch(f"/api/opportunities/{oid}", json={"stage": "谈判"}, headers=as_("E03"))
    assert again.status_code == 409
    assert "已输单" in again.json()["detail"]
    with demo() as session:
        history = session.scalars(
            select(OpportunityStageChange).where(OpportunityStageChange.opportunity_id == oid)
        ).all()
        assert {h.actor_id for h in history} == {"E03"}
        actions = session.scalars(select(AuditLog.action).where(AuditLog.entity_id == oid)).all()
        assert set(actions) == {
            "create_opportunity",
            "update_opportunity",
            "move_opportunity",
            "close_opportunity_lost",
        }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -100}, "amount"),
        ({"stage": "成交"}, "stage"),
        ({"stage": "输单"}, "lost_reason"),
        ({"stage": "输单", "lost_reason": "  "}, "lost_reason"),
    ],
)
def test_invalid_changes_are_422_naming_the_field(
    client: TestClient, as_: Headers, demo: sessionmaker[Session], body: dict[str, object], field: str
) -> None:
    response = client.patch("/api/opportunities/OP001", json=body, headers=as_("E03"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    with demo() as session:
        stored = session.get(Opportunity, "OP001")
        assert stored is not None and (stored.stage, int(stored.amount)) == ("报价", 98000)


def test_who_may_change_it(client: TestClient, as_: Headers) -> None:
    # OP001 is E03's (华北): another salesperson and the 华东 manager get 404, service 403.
    for other in ("E02", "E01"):
        response = client.patch("/api/opportunities/OP001", json={"stage": "谈判"}, headers=as_(other))
        assert response.status_code == 404
        assert response.json()["detail"] == "商机 OP001 不存在"
    assert (
        client.patch("/api/opportunities/OP001", json={"stage": "谈判"}, headers=as_("E06")).status_code
        == 403
    )
    assert (
        client.patch("/api/opportunities/OP001", json={"stage": "谈判"}, headers=as_("E08")).status_code
        == 200
    )
    # E02 cannot open one for 王芳 (not theirs).
    response = client.post(
        "/api/opportunities", json={"customer_id": "C0003", "name": "越权", "amount": 1}, headers=as_("E02")
    )
    assert response.status_code == 404
