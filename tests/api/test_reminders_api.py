"""`/api/reminders` and `/api/tasks/{id}/done` through real staff tokens."""

from datetime import date

from api_stubs import Headers
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.models import AuditLog, Task
from tests.care.care_support import add_sent_notice


def _task(demo: sessionmaker[Session], owner: str, due: date) -> int:
    with demo.begin() as session:
        task = Task(owner_id=owner, customer_id="C0001", title="回电话确认地址", due_date=due, source="chat")
        session.add(task)
        session.flush()
        return task.id


def test_both_endpoints_need_a_staff_sign_in(client: TestClient, demo: sessionmaker[Session]) -> None:
    task_id = _task(demo, "E02", date(2026, 11, 23))
    assert client.get("/api/reminders").status_code == 401
    assert client.post(f"/api/tasks/{task_id}/done").status_code == 401
    with demo() as session:
        assert session.get(Task, task_id).status == "待办"  # type: ignore[union-attr]


def test_reminders_of_the_signed_in_employee(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    task_id = _task(demo, "E02", date(2026, 11, 22))
    with demo() as session:
        add_sent_notice(session, "E02", "工单T0001已用去80%的处理时限", date(2026, 11, 23))
        session.commit()
    body = client.get("/api/reminders", headers=as_("E02")).json()
    assert body["today"] == "2026-11-23"
    assert [n["text"] for n in body["notices"]] == ["工单T0001已用去80%的处理时限"]
    assert task_id in [f["task_id"] for f in body["follow_ups"]]
    assert {"C0001", "C0002"} <= {b["customer_id"] for b in body["birthdays"]}
    assert body["lapsed"] and body["lapsed_total"] >= len(body["lapsed"])
    # Another region's salesperson sees neither the task nor these birthdays.
    other = client.get("/api/reminders", headers=as_("E03")).json()
    assert task_id not in [f["task_id"] for f in other["follow_ups"]]
    assert other["notices"] == []
    assert not {"C0001", "C0002"} & {b["customer_id"] for b in other["birthdays"]}
    # days=1: only birthdays today or tomorrow.
    near = client.get("/api/reminders", params={"days": 1}, headers=as_("E02")).json()
    assert all(b["days_until"] <= 1 for b in near["birthdays"]) and "C0001" not in {
        b["customer_id"] for b in near["birthdays"]
    }


def test_mark_a_task_done(client: TestClient, as_: Headers, demo: sessionmaker[Session]) -> None:
    task_id = _task(demo, "E02", date(2026, 11, 23))
    refused = client.post(f"/api/tasks/{task_id}/done", headers=as_("E03"))
    assert refused.status_code == 403
    assert "负责人或管理员" in refused.json()["detail"]
    done = client.post(f"/api/tasks/{task_id}/done", headers=as_("E02"))
    assert done.status_code == 200
    assert done.json()["task_id"] == task_id
    again = client.post(f"/api/tasks/{task_id}/done", headers=as_("E02"))
    assert again.status_code == 409
    assert client.post("/api/tasks/999999/done", headers=as_("E02")).status_code == 404
    assert client.post("/api/tasks/0/done", headers=as_("E02")).status_code == 422
    with demo() as session:
        assert session.get(Task, task_id).status == "已完成"  # type: ignore[union-attr]
        row = session.scalars(select(AuditLog).where(AuditLog.action == "complete_task")).one()
        assert (row.actor_id, row.entity_id) == ("E02", str(task_id))
