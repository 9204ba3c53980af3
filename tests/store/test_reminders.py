"""Reminders: follow-ups due, birthdays in seven days, lapsed customers, care notices; completing a task."""

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, actor_for
from crm_store.errors import Conflict, Forbidden, NotFound
from crm_store.models import AuditLog, Customer, Interaction, Task
from crm_store.reminders import complete_task, next_birthday, reminders
from tests.care.care_support import add_sent_notice

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("birthday", "today", "expected"),
    [
        (date(1985, 11, 25), TODAY, date(2026, 11, 25)),
        (date(1985, 11, 23), TODAY, date(2026, 11, 23)),
        (date(1985, 11, 22), TODAY, date(2027, 11, 22)),
        (date(1988, 2, 29), date(2027, 1, 10), date(2027, 2, 28)),
        (date(1988, 2, 29), date(2028, 1, 10), date(2028, 2, 29)),
        (date(1988, 2, 29), date(2027, 3, 1), date(2028, 2, 29)),
        (date(1990, 1, 2), date(2026, 12, 30), date(2027, 1, 2)),
    ],
)
def test_next_birthday(birthday: date, today: date, expected: date) -> None:
    assert next_birthday(birthday, today) == expected


def _task(session: Session, owner: str, customer: str | None, due: date, title: str = "回电话") -> Task:
    task = Task(owner_id=owner, customer_id=customer, title=title, due_date=due, source="chat")
    session.add(task)
    session.flush()
    return task


def test_follow_ups_due_are_the_actors_open_tasks_and_next_steps(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        overdue = _task(session, "E02", "C0001", TODAY - timedelta(days=40), "寄样品")
        due_today = _task(session, "E02", "C0002", TODAY, "确认地址")
        _task(session, "E02", "C0001", TODAY + timedelta(days=1), "明天的事")
        _task(session, "E03", "C0003", TODAY, "别人的任务")
        done = _task(session, "E02", "C0001", TODAY, "做完了")
        done.status = "已完成"
        # A next step of E02's own visit, due yesterday, still the customer's latest contact.
        session.add(
            Interaction(
                interaction_id="I90001",
                customer_id="C0012",
                employee_id="E02",
                kind="电话",
                occurred_at=TODAY - timedelta(days=8),
                summary="聊了续约",
                next_step="发续约合同",
                next_date=TODAY - timedelta(days=1),
            )
        )
        # Same, but a later contact took it up: not due any more.
        session.add_all(
            [
                Interaction(
                    interaction_id="I90002",
                    customer_id="C0016",
                    employee_id="E02",
                    kind="拜访",
                    occurred_at=TODAY - timedelta(days=9),
                    summary="初访",
                    next_step="报价",
                    next_date=TODAY - timedelta(days=2),
                ),
                Interaction(
                    interaction_id="I90003",
                    customer_id="C0016",
                    employee_id="E02",
                    kind="电话",
                    occurred_at=TODAY - timedelta(days=1),
                    summary="已报价",
                ),
            ]
        )
        session.flush()
        result = reminders(session, actor_for(session, "E02"), today=TODAY)
        # The fixture's own: E02's call I00035 with 杨杰, next step due 2026-11-05, never followed up.
        titles = [f.title for f in result.follow_ups]
        assert titles == ["寄样品", "安排技术上门演示", "发续约合同", "确认地址"]
        assert result.follow_ups[0].task_id == overdue.id and result.follow_ups[0].days_overdue == 40
        assert (
            result.follow_ups[2].interaction_id == "I90001" and result.follow_ups[2].customer_name == "史伟"
        )
        assert result.follow_ups[3].task_id == due_today.id and result.follow_ups[3].days_overdue == 0


def test_a_visit_with_a_task_is_listed_once(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        session.add(
            Interaction(
                interaction_id="I90010",
                customer_id="C0001",
                employee_id="E02",
                kind="拜访",
                occurred_at=TODAY - timedelta(days=7),
                summary="拜访",
                next_step="发报价单",
                next_date=TODAY,
            )
        )
        _task(session, "E02", "C0001", TODAY, "发报价单")
        result = reminders(session, actor_for(session, "E02"), today=TODAY)
        assert [(f.kind, f.title) for f in result.follow_ups if f.customer_id == "C0001"] == [
            ("task", "发报价单")
        ]


def test_birthdays_in_the_next_seven_days_within_scope(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e02 = reminders(session, actor_for(session, "E02"), today=TODAY)
        by_id = {b.customer_id: b for b in e02.birthdays}
        # 张伟 11-25, 李娜 11-24 (opted out, still listed for staff).
        assert by_id["C0001"].days_until == 2 and by_id["C0001"].birthday == date(2026, 11, 25)
        assert by_id["C0002"].opt_out is True
        assert all(0 <= b.days_until <= 7 for b in e02.birthdays)
        assert [b.days_until for b in e02.birthdays] == sorted(b.days_until for b in e02.birthdays)
        owners = set(session.scalars(select(Customer.owner_id).where(Customer.customer_id.in_(by_id))))
        assert owners == {"E02"}
        # E03 owns neither.
        e03 = reminders(session, actor_for(session, "E03"), today=TODAY)
        assert not {"C0001", "C0002"} & {b.customer_id for b in e03.birthdays}


def test_a_29_february_birthday_is_reminded_on_the_28th(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        customer = session.get(Customer, "C0001")
        assert customer is not None
        customer.birthday = date(1988, 2, 29)
        session.flush()
        e02 = actor_for(session, "E02")
        in_2027 = reminders(session, e02, today=date(2027, 2, 25))
        assert [(b.customer_id, b.birthday) for b in in_2027.birthdays if b.customer_id == "C0001"] == [
            ("C0001", date(2027, 2, 28))
        ]
        in_2028 = reminders(session, e02, today=date(2028, 2, 25))
        assert [b.birthday for b in in_2028.birthdays if b.customer_id == "C0001"] == [date(2028, 2, 29)]
        assert not [
            b for b in reminders(session, e02, today=date(2027, 3, 1)).birthdays if b.customer_id == "C0001"
        ]


def test_lapsed_customers_in_scope(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e03 = reminders(session, actor_for(session, "E03"), today=TODAY)
        ids = {c.customer_id for c in e03.lapsed}
        assert "C0003" in ids  # last order 2026-05-08
        assert e03.lapsed_total >= len(e03.lapsed)
        owners = set(session.scalars(select(Customer.owner_id).where(Customer.customer_id.in_(ids))))
        assert owners == {"E03"}
        data = e03.to_json()
        assert {"follow_ups", "birthdays", "lapsed", "lapsed_total"} <= set(data)


def test_care_notices_of_the_last_three_days_newest_first(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        add_sent_notice(session, "E02", "投诉 T1 快到处理时限了", TODAY)
        add_sent_notice(session, "E02", "投诉 T2 快到处理时限了", TODAY - timedelta(days=2))
        add_sent_notice(session, "E02", "投诉 T3 快到处理时限了", TODAY - timedelta(days=4))
        add_sent_notice(session, "E03", "别人的提醒", TODAY)
        add_sent_notice(session, "E02", "不是收件箱的消息", TODAY, channel="email")

        found = reminders(session, actor_for(session, "E02"), today=TODAY)

        assert [n.text for n in found.notices] == ["投诉 T1 快到处理时限了", "投诉 T2 快到处理时限了"]
        assert [n["text"] for n in found.to_json()["notices"]][0] == "投诉 T1 快到处理时限了"
        assert not found.empty


def test_customers_get_no_reminders(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session, pytest.raises(Forbidden):
        reminders(session, CUSTOMER, today=TODAY)


def test_complete_task(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        task = _task(session, "E02", "C0001", TODAY)
        with pytest.raises(Forbidden) as not_yours:
            complete_task(session, actor_for(session, "E03"), task.id)
        assert not_yours.value.code == "task_not_yours"
        with pytest.raises(Forbidden):
            complete_task(session, actor_for(session, "E01"), task.id)
        done = complete_task(session, actor_for(session, "E02"), task.id)
        assert done.task_id == task.id
        assert session.get(Task, task.id).status == "已完成"  # type: ignore[union-attr]
        with pytest.raises(Conflict) as again:
            complete_task(session, actor_for(session, "E02"), task.id)
        assert again.value.code == "task_not_open"
        with pytest.raises(NotFound):
            complete_task(session, actor_for(session, "E02"), 999999)
        other = _task(session, "E03", "C0003", TODAY)
        complete_task(session, actor_for(session, "E08"), other.id)
        rows = session.scalars(select(AuditLog).where(AuditLog.action == "complete_task")).all()
        assert [(r.actor_id, r.entity_id) for r in rows] == [("E02", str(task.id)), ("E08", str(other.id))]
        assert rows[0].detail["changes"]["status"] == {"old": "待办", "new": "已完成"}
        # Done tasks are no longer due.
        assert task.id not in {
            f.task_id for f in reminders(session, actor_for(session, "E02"), today=TODAY).follow_ups
        }
