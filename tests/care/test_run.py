"""Sending: opt-out read again at send time, quiet hours, retries with backoff, paused channels, dry runs."""

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from care.delivery import DeliveryFailed, SmsSpool, StaffInbox, WebInbox
from care.run import in_quiet_hours, quiet_hours_end, run_once, send_due, today_at_ten
from crm_store import clock
from crm_store.access import Actor
from crm_store.models import Customer, Outbox
from crm_store.outbox import NewMessage, OutboxMessage, care_status, enqueue, resume_channel
from crm_store.settings import CareSettings
from tests.care.care_support import add_customer, add_employee

BEIJING = clock.TZ


class FailingEmail:
    name = "email"
    needs_address = True

    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: OutboxMessage) -> None:
        self.calls += 1
        raise DeliveryFailed("smtp_unreachable:ConnectionRefusedError")


class RecordingEmail:
    name = "email"
    needs_address = True

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: OutboxMessage) -> None:
        self.sent.append(message.dedupe_key)


@pytest.fixture
def settings(tmp_path: Path) -> CareSettings:
    return CareSettings(care_spool_dir=tmp_path / "spool")


def _adapters(email: object, settings: CareSettings) -> dict[str, object]:
    return {
        "staff_inbox": StaffInbox(),
        "web": WebInbox(),
        "email": email,
        "sms": SmsSpool(settings.care_spool_dir),
    }


def _greeting(customer_id: str, channel: str = "email") -> NewMessage:
    return NewMessage(
        rule="birthday",
        audience="customer",
        customer_id=customer_id,
        employee_id=None,
        channel=channel,
        text="生日快乐！",
        dedupe_key=f"birthday:{customer_id}:2026-11-25:customer:{channel}",
    )


def _store(sessions: sessionmaker[Session], customers: int = 1) -> None:
    with sessions.begin() as session:
        add_employee(session, "E02")
        session.flush()
        for n in range(customers):
            add_customer(session, f"C{n}", owner_id="E02", channel_pref="email")


def test_quiet_hours_span_the_night() -> None:
    settings = CareSettings()
    assert in_quiet_hours(datetime(2026, 11, 23, 21, 0, tzinfo=BEIJING), settings)
    assert in_quiet_hours(datetime(2026, 11, 24, 8, 59, tzinfo=BEIJING), settings)
    assert not in_quiet_hours(datetime(2026, 11, 24, 9, 0, tzinfo=BEIJING), settings)
    assert quiet_hours_end(datetime(2026, 11, 23, 22, 0, tzinfo=BEIJING), settings) == datetime(
        2026, 11, 24, 9, 0, tzinfo=BEIJING
    )
    assert quiet_hours_end(datetime(2026, 11, 24, 6, 0, tzinfo=BEIJING), settings) == datetime(
        2026, 11, 24, 9, 0, tzinfo=BEIJING
    )


def test_an_opt_out_after_the_decision_stops_the_message_at_send_time(
    session_factory: sessionmaker[Session], settings: CareSettings
) -> None:
    _store(session_factory)
    now = today_at_ten(date(2026, 11, 25))
    with session_factory.begin() as session:
        enqueue(session, [_greeting("C0")], now=now)
        session.execute(update(Customer).values(opt_out=True))
    email = RecordingEmail()
    report = send_due(session_factory, now=now, settings=settings, adapters=_adapters(email, settings))
    assert email.sent == []
    assert [(i.customer_id, i.reason) for i in report.skipped] == [("C0", "opt_out")]
    with session_factory() as session:
        assert session.scalars(select(Outbox.status)).all() == ["skipped"]


def test_quiet_hours_defer_customer_messages_to_the_morning_but_not_staff_ones(
    session_factory: sessionmaker[Session], settings: CareSettings
) -> None:
    _store(session_factory)
    night = datetime(2026, 11, 25, 22, 30, tzinfo=BEIJING)
    staff = NewMessage(
        "birthday", "staff", "C0", "E02", "staff_inbox", "提醒", "birthday:C0:2026-11-25:staff:staff_inbox"
    )
    with session_factory.begin() as session:
        enqueue(session, [_greeting("C0"), staff], now=night)
    email = RecordingEmail()
    report = send_due(session_factory, now=night, settings=settings, adapters=_adapters(email, settings))
    assert [i.audience for i in report.sent] == ["staff"]
    assert [(i.audience, i.reason) for i in report.deferred] == [("customer", "quiet_hours")]
    assert (
        send_due(
            session_factory,
            now=night + timedelta(hours=10),
            settings=settings,
            adapters=_adapters(email, settings),
        ).sent
        == []
    )  # fmt: skip  (08:30)
    morning = send_due(session_factory, now=datetime(2026, 11, 26, 9, 0, tzinfo=BEIJING), settings=settings,
                       adapters=_adapters(email, settings))  # fmt: skip
    assert [i.dedupe_key for i in morning.sent] == ["birthday:C0:2026-11-25:customer:email"]
    assert email.sent == ["birthday:C0:2026-11-25:customer:email"]


def test_failures_are_retried_with_backoff_and_the_channel_paused_after_ten_in_a_row(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = CareSettings(care_spool_dir=tmp_path, care_retry_base_s=60, care_retry_max_s=3600)
    _store(session_factory, customers=12)
    now = today_at_ten(date(2026, 11, 25))
    with session_factory.begin() as session:
        enqueue(session, [_greeting(f"C{n}") for n in range(12)], now=now)
    failing = FailingEmail()
    report = send_due(session_factory, now=now, settings=settings, adapters=_adapters(failing, settings))
    assert failing.calls == 10  # the tenth failure in a row pauses the channel; two are not tried
    assert len(report.deferred) == 10
    assert {i.reason for i in report.deferred} == {"smtp_unreachable:ConnectionRefusedError"}
    with session_factory() as session:
        status = care_status(session, now=now)
        held = session.scalars(select(Outbox.next_attempt_at).where(Outbox.attempts == 1)).all()
    assert status["channels"] == [
        {
            "channel": "email",
            "consecutive_failures": 10,
            "paused": True,
            "last_error": "smtp_unreachable:ConnectionRefusedError",
        }
    ]
    assert status["deferred"] == 10 and status["pending"] == 2
    assert set(held) == {now + timedelta(seconds=60)}
    # Paused: nothing on the channel is claimed, even after the backoff.
    later = now + timedelta(hours=1)
    assert (
        send_due(session_factory, now=later, settings=settings, adapters=_adapters(failing, settings)).sent
        == []
    )
    assert failing.calls == 10

    with session_factory.begin() as session:
        assert resume_channel(session, "email", actor=Actor(role="admin", employee_id=None))
    working = RecordingEmail()
    resumed = send_due(session_factory, now=later, settings=settings, adapters=_adapters(working, settings))
    assert len(resumed.sent) == 12 and len(set(working.sent)) == 12
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.status == "sent")) == 12


def test_run_once_twice_sends_nothing_new_and_a_dry_run_writes_nothing(
    session_factory: sessionmaker[Session], settings: CareSettings
) -> None:
    _store(session_factory)
    with session_factory.begin() as session:
        session.execute(update(Customer).values(birthday=date(1990, 11, 25), channel_pref="sms"))
    now = today_at_ten(date(2026, 11, 25))
    dry = run_once(session_factory, now=now, dry_run=True, settings=settings)
    assert sorted(i.audience for i in dry.sent) == ["customer", "staff"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Outbox)) == 0
    first = run_once(session_factory, now=now, settings=settings)
    second = run_once(session_factory, now=now + timedelta(minutes=10), settings=settings)
    assert sorted(i.channel for i in first.sent) == ["sms", "staff_inbox"]
    assert second.to_json() == {"sent": [], "deferred": [], "skipped": []}
    spooled = (settings.care_spool_dir / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(spooled) == 1 and "birthday:C0:2026-11-25:customer:sms" in spooled[0]
