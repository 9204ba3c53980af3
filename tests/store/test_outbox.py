"""The care outbox: queued once, claimed once, retried with backoff, channels paused, inboxes read."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import Actor
from crm_store.errors import Invalid
from crm_store.models import AuditLog, Outbox
from crm_store.outbox import (
    NewMessage,
    backoff_seconds,
    care_status,
    claim_due,
    dedupe_key,
    defer,
    enqueue,
    inbox,
    mark_failed,
    mark_read,
    mark_sent,
    record_channel_failure,
    record_channel_success,
    resume_channel,
)
from crm_store.settings import CareSettings

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


def _message(key: str = "birthday:C0001:2026-11-25:staff:staff_inbox", **changes: object) -> NewMessage:
    fields: dict[str, object] = {
        "rule": "birthday",
        "audience": "staff",
        "customer_id": "C0001",
        "employee_id": "E02",
        "channel": "staff_inbox",
        "text": "王丽，您好：客户张伟后天过生日。",
        "dedupe_key": key,
    }
    fields.update(changes)
    return NewMessage(**fields)  # type: ignore[arg-type]


def test_dedupe_key_joins_its_five_parts() -> None:
    assert dedupe_key("birthday", "C0001", "2026-11-25", "staff", "staff_inbox") == (
        "birthday:C0001:2026-11-25:staff:staff_inbox"
    )


def test_enqueue_twice_queues_once(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        assert enqueue(session, [_message(), _message()], now=NOW) == {_message().dedupe_key}
    with demo_store.begin() as session:
        assert enqueue(session, [_message()], now=NOW) == set()
    with demo_store() as session:
        rows = session.scalars(select(Outbox).where(Outbox.kind == "birthday")).all()
    assert len(rows) == 1
    assert rows[0].status == "pending"


def test_enqueue_records_a_skipped_decision_with_its_reason(demo_store: sessionmaker[Session]) -> None:
    message = _message(
        "birthday:C0002:2026-11-24:customer:web",
        audience="customer",
        customer_id="C0002",
        employee_id=None,
        channel="web",
        status="skipped",
        reason="opt_out",
    )
    with demo_store.begin() as session:
        enqueue(session, [message], now=NOW)
    with demo_store() as session:
        row = session.scalars(select(Outbox).where(Outbox.dedupe_key == message.dedupe_key)).one()
    assert (row.status, row.last_error) == ("skipped", "opt_out")


def test_claim_due_claims_each_message_once(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        enqueue(
            session, [_message(f"follow_up:I{n}:2026-11-23:staff:staff_inbox") for n in range(5)], now=NOW
        )
    with demo_store.begin() as session:
        first = claim_due(session, now=NOW, limit=3)
    with demo_store.begin() as session:
        second = claim_due(session, now=NOW, limit=10)
    with demo_store.begin() as session:
        third = claim_due(session, now=NOW, limit=10)
    assert len(first) == 3
    assert len(second) == 2
    assert third == []
    assert {m.id for m in first}.isdisjoint({m.id for m in second})
    assert first[0].recipient_name == "王丽"
    assert first[0].audience == "staff"


def test_claim_due_takes_back_a_claim_whose_sender_died(demo_store: sessionmaker[Session]) -> None:
    settings = CareSettings(care_claim_lease_s=60)
    with demo_store.begin() as session:
        enqueue(session, [_message()], now=NOW)
    with demo_store.begin() as session:
        assert len(claim_due(session, now=NOW, limit=10, settings=settings)) == 1
    with demo_store.begin() as session:
        assert claim_due(session, now=NOW + timedelta(seconds=30), limit=10, settings=settings) == []
    with demo_store.begin() as session:
        again = claim_due(session, now=NOW + timedelta(seconds=61), limit=10, settings=settings)
    assert len(again) == 1


def test_claim_due_gives_a_customer_message_its_address(
    demo_store: sessionmaker[Session],
) -> None:
    message = _message(
        "birthday:C0001:2026-11-25:customer:email",
        audience="customer",
        employee_id=None,
        channel="email",
    )
    with demo_store.begin() as session:
        enqueue(session, [message], now=NOW)
        (claimed,) = claim_due(session, now=NOW, limit=10)
    assert claimed.address == "c0001@example.com"
    assert claimed.audience == "customer"
    assert claimed.opt_out is False


def test_mark_failed_retries_with_doubling_backoff_then_gives_up(demo_store: sessionmaker[Session]) -> None:
    settings = CareSettings(care_retry_base_s=60, care_retry_max_s=600, care_max_attempts=3)
    assert [backoff_seconds(n, settings) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]
    with demo_store.begin() as session:
        enqueue(session, [_message()], now=NOW)
    moment = NOW
    for attempt in (1, 2):
        with demo_store.begin() as session:
            (claimed,) = claim_due(session, now=moment, limit=10, settings=settings)
            assert mark_failed(session, claimed.id, now=moment, error="smtp_refused", settings=settings)
        with demo_store.begin() as session:
            # Not due again before the backoff has passed.
            assert claim_due(session, now=moment + timedelta(seconds=59), limit=10, settings=settings) == []
        moment += timedelta(seconds=backoff_seconds(attempt, settings))
    with demo_store.begin() as session:
        (claimed,) = claim_due(session, now=moment, limit=10, settings=settings)
        assert not mark_failed(session, claimed.id, now=moment, error="smtp_refused", settings=settings)
    with demo_store() as session:
        row = session.get(Outbox, claimed.id)
        assert row is not None
        assert (row.status, row.attempts, row.last_error) == ("failed", 3, "smtp_refused")
        assert care_status(session, now=moment)["failed"] == 1


def test_defer_holds_a_message_until_the_given_moment(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        enqueue(session, [_message()], now=NOW)
        (claimed,) = claim_due(session, now=NOW, limit=10)
        defer(session, claimed.id, until=NOW + timedelta(hours=12))
    with demo_store.begin() as session:
        assert care_status(session, now=NOW)["deferred"] == 1
        assert claim_due(session, now=NOW + timedelta(hours=11), limit=10) == []
        assert len(claim_due(session, now=NOW + timedelta(hours=12), limit=10)) == 1


def test_a_channel_failing_in_a_row_is_paused_and_not_claimed(demo_store: sessionmaker[Session]) -> None:
    settings = CareSettings(care_pause_after_failures=10)
    with demo_store.begin() as session:
        enqueue(session, [_message()], now=NOW)
        for n in range(9):
            assert not record_channel_failure(session, "staff_inbox", error=f"e{n}", settings=settings)
        record_channel_success(session, "staff_inbox")  # a success ends the run
        paused = [
            record_channel_failure(session, "staff_inbox", error="down", settings=settings) for _ in range(10)
        ]
    assert paused == [False] * 9 + [True]
    with demo_store.begin() as session:
        status = care_status(session, now=NOW)
        assert status["channels"] == [
            {"channel": "staff_inbox", "consecutive_failures": 10, "paused": True, "last_error": "down"}
        ]
        assert claim_due(session, now=NOW, limit=10) == []
        assert session.scalars(select(AuditLog.action).where(AuditLog.entity == "care_channel")).all() == [
            "pause_care_channel"
        ]
    with demo_store.begin() as session:
        assert resume_channel(session, "staff_inbox", actor=Actor(role="admin", employee_id="E08"))
    with demo_store.begin() as session:
        assert len(claim_due(session, now=NOW, limit=10)) == 1


def test_resume_channel_refuses_an_unknown_channel(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session, pytest.raises(Invalid) as raised:
        resume_channel(session, "pigeon", actor=Actor(role="admin", employee_id="E08"))
    assert raised.value.code == "channel_unknown"


def test_inbox_shows_sent_messages_of_its_owner_newest_last(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        enqueue(
            session,
            [
                _message("a:1:d:staff:staff_inbox", text="一"),
                _message("a:2:d:staff:staff_inbox", text="二"),
                _message("a:3:d:staff:staff_inbox", text="三", employee_id="E03"),
                _message("a:4:d:customer:web", text="四", employee_id=None, channel="web"),
            ],
            now=NOW,
        )
        for claimed in claim_due(session, now=NOW, limit=10):
            if claimed.text != "二":
                mark_sent(session, claimed.id, now=NOW)
    with demo_store.begin() as session:
        assert [m.text for m in inbox(session, employee_id="E02")] == ["一"]
        assert [m.text for m in inbox(session, employee_id="E03")] == ["三"]
        (web,) = inbox(session, customer_id="C0001")
        assert web.text == "四"
        assert mark_read(session, message_ids=[web.id], employee_id="E02") == 0  # not theirs
        assert mark_read(session, message_ids=[web.id], customer_id="C0001") == 1
        assert inbox(session, customer_id="C0001", unread_only=True) == []
        assert inbox(session, customer_id="C0001", since_id=web.id) == []
        with pytest.raises(Invalid):
            inbox(session)
