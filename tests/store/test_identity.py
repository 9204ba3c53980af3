"""Verification by phone + order number, and the lock-out after three failures."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.identity import (
    LOCK_DURATION,
    MAX_FAILED_ATTEMPTS,
    Verification,
    verification_locked_until,
    verify_customer,
)
from crm_store.models import AuditLog, VerificationAttempt

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ)
PHONE = "18201164104"  # C0001 张伟 (gender 女 in the fixture)
ORDER = "SO202611180001"
OTHER_ORDER = "SO202611100004"  # C0005's


def _verify(
    store: sessionmaker[Session],
    *,
    phone: str = PHONE,
    order_id: str = ORDER,
    conversation: str = "web-1",
    now: datetime = NOW,
) -> Verification:
    # One transaction per chat turn, as the action server does.
    with store.begin() as session:
        return verify_customer(session, conversation=conversation, phone=phone, order_id=order_id, now=now)


def test_phone_and_own_order_verify(demo_store: sessionmaker[Session]) -> None:
    result = _verify(demo_store)
    assert result.verified
    assert (result.outcome, result.customer_id, result.masked_phone, result.display_name) == (
        "verified",
        "C0001",
        "182****4104",
        "张女士",
    )
    # The result is data for the chat to word (bot/domain/identity.yml); nothing in it is the phone.
    assert PHONE not in repr(result)


def test_a_male_customer_is_addressed_as_xiansheng(demo_store: sessionmaker[Session]) -> None:
    result = _verify(demo_store, phone="18439063071", order_id=OTHER_ORDER)
    assert (result.customer_id, result.display_name) == ("C0005", "钱先生")


def test_typed_forms_of_phone_and_order_are_understood(demo_store: sessionmaker[Session]) -> None:
    result = _verify(demo_store, phone="+86 182-0116-4104", order_id=" so2026 1118 0001 ")
    assert result.customer_id == "C0001"


def test_wrong_order_is_a_mismatch_with_two_attempts_left(demo_store: sessionmaker[Session]) -> None:
    result = _verify(demo_store, order_id=OTHER_ORDER)
    assert (result.outcome, result.attempts_left, result.customer_id) == ("mismatch", 2, None)
    assert not result.verified


def test_a_mismatch_never_says_which_part_was_wrong(demo_store: sessionmaker[Session]) -> None:
    wrong_order = _verify(demo_store, order_id=OTHER_ORDER, conversation="a")
    wrong_phone = _verify(demo_store, phone="13800138000", conversation="b")
    # Another phone, so that each case starts from the same count of failures.
    unknown_order = _verify(demo_store, phone="18439063071", order_id="SO209912319999", conversation="c")
    assert wrong_order == wrong_phone == unknown_order
    assert wrong_order.masked_phone is None and wrong_order.display_name is None


def test_third_failure_locks_for_fifteen_minutes(demo_store: sessionmaker[Session]) -> None:
    first = _verify(demo_store, order_id=OTHER_ORDER, now=NOW)
    second = _verify(demo_store, order_id=OTHER_ORDER, now=NOW + timedelta(minutes=1))
    third = _verify(demo_store, order_id=OTHER_ORDER, now=NOW + timedelta(minutes=2))
    assert [first.attempts_left, second.attempts_left] == [2, 1]
    assert third.outcome == "locked"
    assert third.locked_until == NOW + timedelta(minutes=2) + LOCK_DURATION
    assert timedelta(minutes=15) == LOCK_DURATION and MAX_FAILED_ATTEMPTS == 3
    assert third.locked_until is not None and f"{third.locked_until:%H:%M}" == "10:17"

    # Even the right phone and order are refused while locked, and do not extend the lock.
    during = _verify(demo_store, now=NOW + timedelta(minutes=16))
    assert (during.outcome, during.locked_until) == ("locked", third.locked_until)
    with demo_store() as session:
        assert verification_locked_until(
            session, conversation="web-1", now=NOW + timedelta(minutes=16)
        ) == NOW + timedelta(minutes=17)


def test_the_lock_expires_after_fifteen_minutes(demo_store: sessionmaker[Session]) -> None:
    for minute in range(3):
        _verify(demo_store, order_id=OTHER_ORDER, now=NOW + timedelta(minutes=minute))
    unlocked_at = NOW + timedelta(minutes=2) + LOCK_DURATION
    assert _verify(demo_store, now=unlocked_at - timedelta(seconds=1)).outcome == "locked"
    assert _verify(demo_store, now=unlocked_at).customer_id == "C0001"


def test_after_the_lock_three_new_tries(demo_store: sessionmaker[Session]) -> None:
    for minute in range(3):
        _verify(demo_store, order_id=OTHER_ORDER, now=NOW + timedelta(minutes=minute))
    later = NOW + timedelta(minutes=30)
    assert _verify(demo_store, order_id=OTHER_ORDER, now=later).attempts_left == 2


def test_another_sender_trying_the_same_phone_is_locked_too(demo_store: sessionmaker[Session]) -> None:
    for minute in range(3):
        _verify(
            demo_store, order_id=OTHER_ORDER, conversation="attacker-1", now=NOW + timedelta(minutes=minute)
        )
    fresh = _verify(demo_store, conversation="attacker-2", now=NOW + timedelta(minutes=5))
    assert fresh.outcome == "locked"
    assert fresh.customer_id is None


def test_failures_on_one_phone_from_several_senders_add_up(demo_store: sessionmaker[Session]) -> None:
    assert _verify(demo_store, order_id=OTHER_ORDER, conversation="s1").attempts_left == 2
    assert _verify(demo_store, order_id=OTHER_ORDER, conversation="s2").attempts_left == 1
    assert _verify(demo_store, order_id=OTHER_ORDER, conversation="s3").outcome == "locked"


def test_switching_phones_in_one_conversation_is_still_counted(demo_store: sessionmaker[Session]) -> None:
    phones = ["13800138001", "13800138002", "13800138003"]
    results = [_verify(demo_store, phone=phone) for phone in phones]
    assert [r.outcome for r in results] == ["mismatch", "mismatch", "locked"]


def test_a_success_clears_the_conversations_failures(demo_store: sessionmaker[Session]) -> None:
    _verify(demo_store, order_id=OTHER_ORDER)
    _verify(demo_store, order_id=OTHER_ORDER)
    assert _verify(demo_store).verified
    assert _verify(demo_store, order_id=OTHER_ORDER).attempts_left == 2
    with demo_store() as session:
        assert session.scalar(select(func.count()).select_from(VerificationAttempt)) == 2


def test_old_failures_are_forgotten(demo_store: sessionmaker[Session]) -> None:
    _verify(demo_store, order_id=OTHER_ORDER, now=NOW)
    _verify(demo_store, order_id=OTHER_ORDER, now=NOW + timedelta(minutes=1))
    assert _verify(demo_store, order_id=OTHER_ORDER, now=NOW + timedelta(days=2)).attempts_left == 2


@pytest.mark.parametrize(
    ("phone", "order_id", "field"),
    [
        ("1820116410", ORDER, "phone"),
        ("电话是多少", ORDER, "phone"),
        (PHONE, "SO2026", "order_id"),
        (PHONE, "我不记得了", "order_id"),
    ],
)
def test_malformed_input_is_invalid_and_costs_no_attempt(
    demo_store: sessionmaker[Session], phone: str, order_id: str, field: str
) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS + 1):
        result = _verify(demo_store, phone=phone, order_id=order_id)
        assert (result.outcome, result.customer_id, result.invalid_field) == ("invalid", None, field)
    assert _verify(demo_store).verified


def test_nothing_in_the_lock_table_is_in_clear(demo_store: sessionmaker[Session]) -> None:
    _verify(demo_store, order_id=OTHER_ORDER, conversation="web-secret-sender")
    with demo_store() as session:
        subjects = session.scalars(select(VerificationAttempt.subject)).all()
    assert sorted(s.split(":")[0] for s in subjects) == ["conversation", "phone"]
    assert not any(PHONE in s or "secret" in s for s in subjects)


def test_success_is_audited_without_personal_data(demo_store: sessionmaker[Session]) -> None:
    _verify(demo_store)
    with demo_store() as session:
        rows = session.scalars(select(AuditLog)).all()
    assert [(r.action, r.entity, r.entity_id, r.actor_role) for r in rows] == [
        ("verify_customer", "customer", "C0001", "customer")
    ]
    assert PHONE not in str(rows[0].detail) and rows[0].actor_id != "web-1"


def test_not_locked_before_any_failure(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        assert verification_locked_until(session, conversation="web-1", phone=PHONE, now=NOW) is None


def test_uses_the_crm_clock_by_default(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    for _ in range(MAX_FAILED_ATTEMPTS):
        with demo_store.begin() as session:
            result = verify_customer(session, conversation="web-9", phone=PHONE, order_id=OTHER_ORDER)
    assert result.locked_until is not None
    assert result.locked_until.date() in {clock.today(), clock.today() + timedelta(days=1)}
