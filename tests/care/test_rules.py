"""Each care rule on crafted data, on SQLite and PostgreSQL: who hears what, when, and once."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from care.rules import (
    DueEvent,
    birthday_events,
    follow_up_events,
    lapse_events,
    replenishment_events,
    sla_events,
    ticket_deadline,
)
from care.run import today_at_ten
from care.texts import render, templates
from crm_store.lapse import clear_population_gap_cache, lapsed_customers
from crm_store.models import Customer, Interaction, Outbox, Task, Ticket
from crm_store.settings import CareSettings
from crm_store.staff_formatting import money
from tests.care.care_support import (
    add_customer,
    add_employee,
    add_order,
    add_products,
    delete_employee_leaving_references,
)

SETTINGS = CareSettings()


def _company(session: Session) -> None:
    add_employee(session, "E01", "manager", "华东")
    add_employee(session, "E02", "sales", "华东")
    add_employee(session, "E03", "sales", "华北")
    add_employee(session, "E06", "service", "华东")
    add_employee(session, "E08", "admin", "华东")
    session.flush()


def _by_audience(events: list[DueEvent]) -> dict[str, list[DueEvent]]:
    found: dict[str, list[DueEvent]] = {"staff": [], "customer": []}
    for event in events:
        found[event.audience].append(event)
    return found


def _texts_render(events: list[DueEvent]) -> list[str]:
    return [render(event.template, **event.fields) for event in events]


def test_every_template_is_chinese_and_addresses_someone() -> None:
    for key, text in templates().items():
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text), key
        if not key.startswith("subject."):
            assert "{employee_name}" in text or "{salutation}" in text, key


def test_birthday_reminds_the_owner_within_two_days_and_greets_on_the_day(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _company(session)
        add_customer(
            session, "C1", birthday=date(1985, 11, 25), owner_id="E02", channel_pref="email", gender="女"
        )
        add_customer(session, "C2", birthday=date(1990, 11, 24), owner_id="E02", opt_out=True)
    with session_factory() as session:
        early = birthday_events(session, today_at_ten(date(2026, 11, 22)), SETTINGS)
        before = birthday_events(session, today_at_ten(date(2026, 11, 23)), SETTINGS)
        on_day = birthday_events(session, today_at_ten(date(2026, 11, 25)), SETTINGS)
        opted = birthday_events(session, today_at_ten(date(2026, 11, 24)), SETTINGS)
    assert [e.customer_id for e in early if e.audience == "staff"] == ["C2"]
    staff = _by_audience(before)["staff"]
    assert {(e.customer_id, e.employee_id, e.dedupe_key) for e in staff} == {
        ("C1", "E02", "birthday:C1:2026-11-25:staff:staff_inbox"),
        ("C2", "E02", "birthday:C2:2026-11-24:staff:staff_inbox"),
    }
    assert _by_audience(before)["customer"] == []
    (greeting,) = _by_audience(on_day)["customer"]
    assert (greeting.channel, greeting.skip_reason) == ("email", None)
    assert greeting.dedupe_key == "birthday:C1:2026-11-25:customer:email"
    assert "客户C1女士" in render(greeting.template, **greeting.fields)
    (skipped,) = _by_audience(opted)["customer"]
    assert (skipped.customer_id, skipped.skip_reason) == ("C2", "opt_out")
    # The owner still hears about the opted-out customer, told that no greeting goes out.
    assert any("已退订" in text for text in _texts_render(_by_audience(opted)["staff"]))


def test_a_29_february_birthday_is_greeted_on_28_february_in_other_years(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _company(session)
        add_customer(session, "C1", birthday=date(2000, 2, 29), owner_id="E02")

    def greeted(day: date) -> bool:
        with session_factory() as session:
            events = birthday_events(session, today_at_ten(day), SETTINGS)
        return any(e.audience == "customer" for e in events)

    assert greeted(date(2027, 2, 28))
    assert not greeted(date(2027, 3, 1))
    assert not greeted(date(2028, 2, 28))
    assert greeted(date(2028, 2, 29))
    with session_factory() as session:
        (reminder,) = birthday_events(session, today_at_ten(date(2027, 2, 26)), SETTINGS)
        assert birthday_events(session, today_at_ten(date(2027, 2, 25)), SETTINGS) == []
    assert reminder.occasion == "2027-02-28"


def test_a_customer_without_owner_or_with_a_deleted_one_has_the_manager_chain(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _company(session)
        add_employee(session, "E09", "sales", "华东")
        session.flush()
        add_customer(session, "C1", birthday=date(1980, 11, 24), owner_id=None, region="华东")
        add_customer(session, "C2", birthday=date(1980, 11, 24), owner_id=None, region="西南")
        add_customer(session, "C3", birthday=date(1980, 11, 24), owner_id="E09", region="华东")
    delete_employee_leaving_references(session_factory, "E09")
    with session_factory() as session:
        events = birthday_events(session, today_at_ten(date(2026, 11, 23)), SETTINGS)
    staff = {e.customer_id: e.employee_id for e in events if e.audience == "staff"}
    # 华东 has a manager; 西南 has none and there is no 全国 manager, so the admin hears.
    assert staff == {"C1": "E01", "C2": "E08", "C3": "E01"}


def test_lapse_nudges_the_owner_with_context_and_wins_back_once_in_90_days(
    session_factory: sessionmaker[Session],
) -> None:
    clear_population_gap_cache()
    today = date(2026, 11, 23)
    with session_factory.begin() as session:
        _company(session)
        add_customer(session, "C1", owner_id="E02", channel_pref="sms")
        add_customer(session, "C2", owner_id="E02")  # never bought: a prospect, not lapsed
        add_customer(session, "C3", owner_id=None, region="华北")  # lapsed, no owner
        add_customer(session, "C4", owner_id="E02")  # bought last month
        session.flush()
        for n, day in enumerate((date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1))):
            add_order(session, f"SO1{n}", "C1", day)
        add_order(session, "SO19", "C1", date(2026, 4, 1), status="已取消")
        add_order(session, "SO30", "C3", date(2026, 5, 1))
        add_order(session, "SO40", "C4", date(2026, 10, 23))
        session.add(Ticket(ticket_id="T1", customer_id="C1", category="其他", priority="低", status="新建",
                           opened_at=date(2026, 11, 1), summary="问题"))  # fmt: skip
    now = today_at_ten(today)
    with session_factory() as session:
        events = lapse_events(session, now, SETTINGS)
        expected = {c.customer_id for c in lapsed_customers(session, today=today)}
    staff = _by_audience(events)["staff"]
    assert {e.customer_id for e in staff} == expected == {"C1", "C3"}
    by_customer = {e.customer_id: e for e in staff}
    assert by_customer["C1"].employee_id == "E02"
    assert by_customer["C3"].employee_id == "E08"  # no 华北 manager, no 全国 manager: the admin
    nudge = render(by_customer["C1"].template, **by_customer["C1"].fields)
    assert "2026年3月1日" in nudge and "共3笔" in nudge and "1个" in nudge
    # Count and spend come with the lapse query (no query per customer): the cancelled order is out.
    assert by_customer["C1"].fields["order_count"] == 3
    assert by_customer["C1"].fields["spend"] == money(Decimal(300))
    assert by_customer["C3"].fields["order_count"] == 1
    assert by_customer["C1"].dedupe_key == "lapse:C1:2026-03-01:staff:staff_inbox"
    winbacks = {e.customer_id: e for e in _by_audience(events)["customer"]}
    assert winbacks["C1"].channel == "sms"

    # A win-back sent 30 days ago (for an earlier lapse) holds the next one back until 90 days pass.
    with session_factory.begin() as session:
        session.add(Outbox(customer_id="C1", channel="sms", kind="lapse", body="……", status="sent",
                           dedupe_key="lapse:C1:2025-06-01:customer:sms",
                           created_at=now - timedelta(days=30)))  # fmt: skip
    with session_factory() as session:
        later = lapse_events(session, now, SETTINGS)
    assert {e.customer_id for e in _by_audience(later)["customer"]} == {"C3"}
    assert {e.customer_id for e in _by_audience(later)["staff"]} == {"C1", "C3"}


def test_follow_up_reminds_that_morning_once_per_task_or_next_step(
    session_factory: sessionmaker[Session],
) -> None:
    today = date(2026, 11, 26)
    with session_factory.begin() as session:
        _company(session)
        add_customer(session, "C1", owner_id="E03", region="华北")
        add_customer(session, "C2", owner_id="E02")
        add_customer(session, "C3", owner_id="E02")
        session.flush()
        session.add(Interaction(interaction_id="I1", customer_id="C1", employee_id="E03", kind="拜访",
                                occurred_at=date(2026, 11, 16), summary="谈报价", next_step="发送二期报价单",
                                next_date=today))  # fmt: skip
        # Taken up by a later call: no reminder.
        session.add(Interaction(interaction_id="I2", customer_id="C2", employee_id="E02", kind="电话",
                                occurred_at=date(2026, 11, 10), summary="回访", next_step="再打电话",
                                next_date=today))  # fmt: skip
        session.add(Interaction(interaction_id="I3", customer_id="C2", employee_id="E02", kind="电话",
                                occurred_at=date(2026, 11, 20), summary="回访", next_date=None))  # fmt: skip
        # A logged visit makes a task and a next step the same day: reminded once, by the task.
        session.add(Interaction(interaction_id="I4", customer_id="C3", employee_id="E02", kind="拜访",
                                occurred_at=date(2026, 11, 20), summary="拜访", next_step="送样品",
                                next_date=today))  # fmt: skip
        session.add(
            Task(owner_id="E02", customer_id="C3", title="送样品", due_date=today, source="interaction")
        )
        session.add(Task(owner_id="E02", customer_id=None, title="整理周报", due_date=today, source="chat"))
        tomorrow = today + timedelta(days=1)
        session.add(
            Task(owner_id="E02", customer_id="C3", title="明天的事", due_date=tomorrow, source="chat")
        )
    with session_factory() as session:
        events = follow_up_events(session, datetime(2026, 11, 26, 2, 0, tzinfo=UTC), SETTINGS)
        assert follow_up_events(session, today_at_ten(today - timedelta(days=1)), SETTINGS) == []
    subjects = {e.subject: e for e in events}
    assert set(subjects) == {"I1", "task-1", "task-2"}
    assert subjects["I1"].employee_id == "E03"
    assert "发送二期报价单" in render(subjects["I1"].template, **subjects["I1"].fields)
    assert subjects["I1"].dedupe_key == "follow_up:I1:2026-11-26:staff:staff_inbox"


def test_sla_warns_the_assignee_at_80_percent_and_escalates_past_the_deadline(
    session_factory: sessionmaker[Session],
) -> None:
    opened = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    with session_factory.begin() as session:
        _company(session)
        add_customer(session, "C1", owner_id="E02", region="华东")
        add_customer(session, "C2", owner_id="E03", region="华北")
        session.flush()
        for ticket_id, customer in (("T1", "C1"), ("T2", "C2")):
            session.add(Ticket(ticket_id=ticket_id, customer_id=customer, category="物流配送", priority="中",
                               status="处理中", opened_at=date(2026, 11, 23), assignee_id="E06",
                               summary="延误", assigned_at=opened,
                               due_at=opened + timedelta(hours=24)))  # fmt: skip
        session.add(Ticket(ticket_id="T3", customer_id="C1", category="其他", priority="中", status="已解决",
                           opened_at=date(2026, 11, 1), assignee_id="E06", summary="已处理"))  # fmt: skip

    def due(hours: float) -> list[DueEvent]:
        with session_factory() as session:
            return sla_events(session, opened + timedelta(hours=hours), SETTINGS)

    assert due(19) == []
    warned = due(19.5)
    assert {(e.subject, e.employee_id, e.template) for e in warned} == {
        ("T1", "E06", "sla.warn"),
        ("T2", "E06", "sla.warn"),
    }
    assert warned[0].occasion == "2026-11-24:80"
    breached = {e.subject: e for e in due(24)}
    assert breached["T1"].employee_id == "E01"  # 华东's manager
    assert breached["T2"].employee_id == "E08"  # no 华北 manager: the admin
    assert breached["T1"].dedupe_key == "sla:T1:2026-11-24:breach:staff:staff_inbox"


def test_an_imported_ticket_without_deadline_gets_one_from_its_opening_day() -> None:
    deadline = ticket_deadline(None, date(2026, 11, 14), "高")
    assert deadline == datetime(2026, 11, 14, 4, 0, tzinfo=deadline.tzinfo)


def test_replenishment_reminds_a_few_days_before_a_consumable_runs_out(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _company(session)
        add_products(session)
        add_customer(session, "C1", owner_id="E02", channel_pref="wechat")
        add_customer(session, "C2", owner_id="E02")  # one purchase: no pace yet
        add_customer(session, "C3", owner_id="E02")  # not a consumable
        session.flush()
        # 2 bags lasted 30 days: 15 days a bag; the last 2 bags run out on 11-30.
        add_order(session, "SO1", "C1", date(2026, 10, 1), items=(("P007", 2),))
        add_order(session, "SO2", "C1", date(2026, 10, 31), items=(("P007", 2),))
        add_order(session, "SO3", "C2", date(2026, 10, 31), items=(("P007", 2),))
        add_order(session, "SO4", "C3", date(2026, 10, 1), items=(("P001", 1),))
        add_order(session, "SO5", "C3", date(2026, 10, 31), items=(("P001", 1),))

    def due(day: date) -> list[DueEvent]:
        with session_factory() as session:
            return replenishment_events(session, today_at_ten(day), SETTINGS)

    assert due(date(2026, 11, 26)) == []
    (event,) = due(date(2026, 11, 27))
    assert (event.customer_id, event.channel, event.occasion) == ("C1", "wechat", "2026-11-30")
    assert event.dedupe_key == "replenishment:C1+P007:2026-11-30:customer:wechat"
    assert "有机大米" in render(event.template, **event.fields)
    assert [e.occasion for e in due(date(2026, 11, 30))] == ["2026-11-30"]
    assert due(date(2026, 12, 1)) == []


def test_rules_read_the_opt_out_into_a_skip(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        _company(session)
        add_customer(
            session, "C1", birthday=date(1980, 11, 23), owner_id="E02", channel_pref="email", email=None
        )
    with session_factory() as session:
        (customer_event,) = _by_audience(
            birthday_events(session, today_at_ten(date(2026, 11, 23)), SETTINGS)
        )["customer"]
        assert customer_event.skip_reason == "no_address"
        customer = session.scalars(select(Customer)).one()
        assert customer.opt_out is False
