"""Reminders by chat, run as the action server runs them, on the demo store (2026-11-23).

Demo: E02's customers 李秀英, 李娜 and 张伟 have birthdays on 11-23, 11-24 and 11-25; E02 and E03
each have a visit whose next date is due; E03 has no birthday this week.
"""

from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from staff_trackers import responses, run, said, staff_tracker

from actions.staff_reminders import ActionListReminders
from crm_store.models import Task
from crm_store.staff_phrases import reminder_sections
from tests.care.care_support import add_sent_notice


def _ask(text: str, employee: str | None, domain: dict[str, Any], **entities: str) -> Any:
    tracker = staff_tracker(text, employee=employee, intent="list_reminders", entities=entities)
    return run(ActionListReminders(), tracker, domain)[0]


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("今天要跟进谁", {"follow_ups"}),
        ("这周谁过生日", {"birthdays"}),
        ("哪些客户很久没下单了", {"lapsed"}),
        ("看下关怀通知", {"notices"}),
        ("我的提醒", {"follow_ups", "birthdays", "lapsed", "notices"}),
    ],
)
def test_the_question_picks_the_section(text: str, asked: set[str]) -> None:
    assert reminder_sections(text) == asked


def test_birthdays_this_week_of_my_customers(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher = _ask("这周谁过生日", "E02", domain)

    assert responses(dispatcher) == ["utter_reminder_birthdays"]
    lines = dispatcher.messages[0]["lines"]
    assert lines.index("李秀英") < lines.index("李娜") < lines.index("张伟")
    assert "11月25日" in lines


def test_another_salesperson_sees_none_of_them(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher = _ask("这周谁过生日", "E03", domain)

    assert responses(dispatcher) == ["utter_no_birthdays"]
    assert "张伟" not in said(dispatcher)


def test_follow_ups_come_with_a_button_to_log_the_visit(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    dispatcher = _ask("今天要跟进谁", "E03", domain)

    assert responses(dispatcher) == ["utter_reminder_next_visit"]
    assert dispatcher.messages[0]["customer_id"] == "C0038"
    card = [m["custom"] for m in dispatcher.messages if m.get("custom")][0]
    assert card["card"] == "reminders"


def test_lapsed_customers_are_listed(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    dispatcher = _ask("哪些客户很久没下单了", "E03", domain)

    assert responses(dispatcher) == ["utter_reminder_lapsed"]
    assert "王芳" in dispatcher.messages[0]["lines"]


def test_care_notices_are_listed_with_their_day(
    action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    with action_store() as session:
        add_sent_notice(session, "E03", "投诉 T0005 已超过处理时限，请尽快跟进。", date(2026, 11, 22))
        session.commit()

    mine = _ask("看下关怀通知", "E03", domain)
    theirs = _ask("看下关怀通知", "E02", domain)

    assert responses(mine) == ["utter_reminder_notices"]
    assert mine.messages[0]["lines"] == "• 11月22日 09:30：投诉 T0005 已超过处理时限，请尽快跟进。"
    assert responses(theirs) == ["utter_no_notices"]


def _add_task(factory: sessionmaker[Session], owner: str) -> int:
    with factory() as session:
        task = Task(
            owner_id=owner,
            customer_id="C0003",
            title="发送二期报价单",
            due_date=date(2026, 11, 23),
            source="chat",
        )
        session.add(task)
        session.commit()
        return task.id


def test_mark_done_completes_my_task(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    task_id = _add_task(action_store, "E03")
    listed = _ask("今天要跟进谁", "E03", domain)
    mine = [m for m in listed.messages if m.get("response") == "utter_reminder_follow_up"]
    assert mine and mine[0]["task_id"] == task_id

    dispatcher = _ask(f'/list_reminders{{"task_id":"{task_id}"}}', "E03", domain, task_id=str(task_id))

    assert responses(dispatcher)[0] == "utter_task_done"
    with action_store() as session:
        assert session.get(Task, task_id).status == "已完成"


@pytest.mark.parametrize("employee", [None, "E02"])
def test_nobody_else_can_mark_my_task_done(
    employee: str | None, action_store: sessionmaker[Session], domain: dict[str, Any]
) -> None:
    task_id = _add_task(action_store, "E03")

    dispatcher = _ask(f'/list_reminders{{"task_id":"{task_id}"}}', employee, domain, task_id=str(task_id))

    assert responses(dispatcher) == (["utter_staff_only"] if employee is None else ["utter_task_not_found"])
    with action_store() as session:
        assert session.get(Task, task_id).status == "待办"


def test_a_customer_gets_no_reminders(action_store: sessionmaker[Session], domain: dict[str, Any]) -> None:
    dispatcher = _ask("这周谁过生日", None, domain)

    assert responses(dispatcher) == ["utter_staff_only"]
    assert "张伟" not in said(dispatcher)
