"""`GET /api/admin/customers/{id}/personal-data` and `POST …/erase`: admins only, audited."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from api_stubs import Headers
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.models import AuditLog, Customer, Order
from tests.store.test_service_metrics import Tracker


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracker]:
    path = tmp_path / "tracker.db"
    engine = create_engine(f"sqlite:///{path}")
    monkeypatch.setenv("CRM_TRACKER_URL", f"sqlite:///{path}")
    try:
        yield Tracker(engine)
    finally:
        engine.dispose()


def test_an_admin_exports_everything_held_with_her_conversation(
    client: TestClient, as_: Headers, demo: sessionmaker[Session], tracker: Tracker
) -> None:
    tracker.slot("web-zw", datetime.now(clock.TZ), "verified_customer_id", "C0001")
    tracker.turn("web-zw", datetime.now(clock.TZ), "我的快递到哪了", "check_order_status")

    response = client.get("/api/admin/customers/C0001/personal-data", headers=as_("E08"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"]["name"] == "张伟" and body["profile"]["phone"] == "18201164104"
    assert "SO202611180001" in {order["order_id"] for order in body["orders"]}
    assert body["conversations"][0]["messages"][0]["text"] == "我的快递到哪了"
    with demo() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.action == "export_personal_data")).one()
    assert (row.actor_id, row.entity_id) == ("E08", "C0001")


def test_an_admin_erases_and_her_sales_stay(
    client: TestClient, as_: Headers, demo: sessionmaker[Session], tracker: Tracker
) -> None:
    tracker.slot("web-qj", datetime.now(clock.TZ), "verified_customer_id", "C0058")
    tracker.turn("web-qj", datetime.now(clock.TZ), "我是钱娟", "inform")
    with demo() as session:
        sales = session.scalar(select(func.sum(Order.amount)).where(Order.customer_id == "C0058"))

    response = client.post("/api/admin/customers/C0058/erase", headers=as_("E08"))
    assert response.status_code == 200, response.text
    assert response.json()["conversations"] == 1 and response.json()["already_erased"] is False
    again = client.post("/api/admin/customers/C0058/erase", headers=as_("E08"))
    assert again.status_code == 200 and again.json()["already_erased"] is True

    with demo() as session:
        customer = session.get(Customer, "C0058")
        assert customer is not None and customer.phone is None and customer.name == "匿名客户"
        assert session.scalar(select(func.sum(Order.amount)).where(Order.customer_id == "C0058")) == sales
        actors = session.scalars(select(AuditLog.actor_id).where(AuditLog.action == "erase_customer")).all()
    assert actors == ["E08", "E08"]
    exported = client.get("/api/admin/customers/C0058/personal-data", headers=as_("E08")).json()
    # Her conversation is still counted, renamed and without a word of it.
    [conversation] = exported["conversations"]
    assert conversation["conversation"].startswith("erased:") and conversation["messages"] == []


@pytest.mark.parametrize("employee", ["E01", "E02", "E06"])
def test_other_roles_get_403_and_nothing_changes(
    client: TestClient, as_: Headers, demo: sessionmaker[Session], employee: str
) -> None:
    export = client.get("/api/admin/customers/C0058/personal-data", headers=as_(employee))
    erase = client.post("/api/admin/customers/C0058/erase", headers=as_(employee))
    assert (export.status_code, erase.status_code) == (403, 403)
    assert erase.json() == {"detail": "您的角色无权进行此操作"}
    with demo() as session:
        assert session.get(Customer, "C0058").name == "钱娟"  # type: ignore[union-attr]


def test_without_sign_in_401_and_an_unknown_customer_404(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    assert client.post("/api/admin/customers/C0058/erase").status_code == 401
    missing = client.get("/api/admin/customers/C9999/personal-data", headers=as_("E08"))
    assert missing.status_code == 404 and missing.json() == {"detail": "客户 C9999 不存在"}
