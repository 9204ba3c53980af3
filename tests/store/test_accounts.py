"""Staff accounts: password hashes, sign-in, lock-out after repeated failures, and their audit rows."""

import json
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import Actor, actor_for
from crm_store.accounts import (
    DEMO_PASSWORD,
    LOCKOUT,
    MAX_FAILED_LOGINS,
    OPERATOR,
    authenticate,
    hash_password,
    list_accounts,
    password_stamp,
    set_demo_passwords,
    set_password,
)
from crm_store.errors import Forbidden, Invalid, Locked, NotFound, Unauthenticated
from crm_store.models import AuditLog, Employee

PASSWORD = "correct-horse-42"
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """An empty store with three employees, E03 with a password."""
    with session_factory.begin() as session:
        session.add_all(
            [
                Employee(employee_id="E03", name="刘洋", role="sales", region="华北"),
                Employee(employee_id="E06", name="赵敏", role="service", region="华东"),
                Employee(employee_id="E08", name="周杰", role="admin", region="华东"),
            ]
        )
        session.flush()
        set_password(session, "E03", PASSWORD, actor=OPERATOR)
    return session_factory


def sign_in(store: sessionmaker[Session], employee_id: str, password: str, now: datetime = NOW) -> Actor:
    """Sign in and commit also on refusal, as the API route does."""
    with store() as session:
        try:
            return authenticate(session, employee_id, password, now=now)
        finally:
            session.commit()


def audit_rows(store: sessionmaker[Session]) -> list[AuditLog]:
    with store() as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


def test_the_right_password_signs_in_as_the_employee_of_today(store: sessionmaker[Session]) -> None:
    actor = sign_in(store, "E03", PASSWORD)

    assert actor == Actor(role="sales", employee_id="E03", name="刘洋", region="华北")
    with store() as session:
        stored = session.get(Employee, "E03")
        assert stored is not None and stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2")
        assert PASSWORD not in stored.password_hash


@pytest.mark.parametrize(
    ("employee_id", "password"),
    [("E03", "wrong-password"), ("E03", ""), ("E99", PASSWORD), ("E06", PASSWORD), ("e03", PASSWORD)],
    ids=["wrong", "empty", "unknown-id", "no-password-set", "id-case"],
)
def test_wrong_password_and_unknown_account_are_refused_alike(
    store: sessionmaker[Session], employee_id: str, password: str
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        sign_in(store, employee_id, password)

    assert (refused.value.code, refused.value.data) == ("login_failed", {})


def test_an_unknown_id_takes_about_as_long_as_a_wrong_password(store: sessionmaker[Session]) -> None:
    def timed(employee_id: str) -> float:
        start = time.perf_counter()
        with pytest.raises(Unauthenticated):
            sign_in(store, employee_id, "wrong-password")
        return time.perf_counter() - start

    # Five failures would lock E03: four wrong passwords, and a new password in between.
    wrong = [timed("E03") for _ in range(3)]
    unknown = [timed("E77") for _ in range(3)]

    # Without the dummy hash an unknown id answers in about a millisecond, a wrong password in ~100 ms.
    assert statistics.median(unknown) > 0.5 * statistics.median(wrong)


def test_five_failures_lock_the_account_for_fifteen_minutes(store: sessionmaker[Session]) -> None:
    for attempt in range(1, MAX_FAILED_LOGINS):
        with pytest.raises(Unauthenticated):
            sign_in(store, "E03", f"wrong-{attempt}", now=NOW + timedelta(seconds=attempt))
    fifth = NOW + timedelta(seconds=MAX_FAILED_LOGINS)
    with pytest.raises(Locked) as locked:
        sign_in(store, "E03", "wrong-5", now=fifth)
    assert locked.value.code == "login_locked"
    assert locked.value.data["until"] == fifth + timedelta(minutes=15)

    # While locked even the right password is refused.
    with pytest.raises(Locked):
        sign_in(store, "E03", PASSWORD, now=fifth + LOCKOUT - timedelta(seconds=1))
    with store() as session:
        assert [a.locked_until for a in list_accounts(session, now=fifth) if a.employee_id == "E03"] == [
            fifth + LOCKOUT
        ]

    # Once the lock has run out, the right password signs in and the count starts again.
    assert sign_in(store, "E03", PASSWORD, now=fifth + LOCKOUT).employee_id == "E03"
    with store() as session:
        stored = session.get(Employee, "E03")
        assert stored is not None
        assert (stored.failed_logins, stored.locked_until) == (0, None)


def test_another_failure_after_the_lock_locks_again(store: sessionmaker[Session]) -> None:
    for attempt in range(MAX_FAILED_LOGINS):
        with pytest.raises((Unauthenticated, Locked)):
            sign_in(store, "E03", f"wrong-{attempt}")
    later = NOW + LOCKOUT + timedelta(minutes=1)

    with pytest.raises(Locked):
        sign_in(store, "E03", "wrong-again", now=later)


def test_a_success_resets_the_failure_count(store: sessionmaker[Session]) -> None:
    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(Unauthenticated):
            sign_in(store, "E03", "wrong-password")
    sign_in(store, "E03", PASSWORD)

    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(Unauthenticated):  # not Locked: the count started again
            sign_in(store, "E03", "wrong-password")


def test_a_new_password_lifts_the_lock_and_changes_the_stamp(store: sessionmaker[Session]) -> None:
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises((Unauthenticated, Locked)):
            sign_in(store, "E03", "wrong-password")
    with store() as session:
        before = password_stamp(session, "E03")

    with store.begin() as session:
        set_password(session, "E03", "another-pass-9", actor=OPERATOR)

    assert sign_in(store, "E03", "another-pass-9").employee_id == "E03"
    with pytest.raises(Unauthenticated):
        sign_in(store, "E03", PASSWORD)
    with store() as session:
        assert password_stamp(session, "E03") not in {None, before}
        assert password_stamp(session, "E06") is None


@pytest.mark.parametrize(
    ("password", "code"),
    [("1234567", "password_too_short"), ("", "password_too_short"), ("x" * 129, "password_too_long")],
)
def test_a_password_of_the_wrong_length_is_refused(
    store: sessionmaker[Session], password: str, code: str
) -> None:
    with store() as session, pytest.raises(Invalid) as refused:
        set_password(session, "E06", password, actor=OPERATOR)

    assert refused.value.code == code
    assert refused.value.field == "password"
    assert hash_password("12345678").startswith("$argon2")


def test_who_may_set_a_password(store: sessionmaker[Session]) -> None:
    with store() as session:
        sales = actor_for(session, "E03")
        admin = actor_for(session, "E08")
        with pytest.raises(Forbidden):
            set_password(session, "E06", "sales-sets-it", actor=sales)
        with pytest.raises(Forbidden):
            set_password(session, "E06", "customer-sets-it", actor=Actor(role="customer"))
        set_password(session, "E03", "my-own-pass", actor=sales)
        set_password(session, "E06", "admin-sets-it", actor=admin)
        with pytest.raises(NotFound):
            set_password(session, "E77", "nobody-here", actor=OPERATOR)


def test_audit_rows_record_sign_ins_and_new_passwords_without_secrets(store: sessionmaker[Session]) -> None:
    with pytest.raises(Unauthenticated):
        sign_in(store, "E03", "wrong-password")
    with pytest.raises(Unauthenticated):
        sign_in(store, "not-an-id-but-a-password", "x")
    sign_in(store, "E03", PASSWORD)

    rows = audit_rows(store)
    assert [(r.action, r.actor_role, r.actor_id, r.entity_id) for r in rows] == [
        ("set_password", "operator", None, "E03"),
        ("login_failed", "anonymous", None, "E03"),
        ("login_failed", "anonymous", None, None),
        ("login", "sales", "E03", "E03"),
    ]
    assert rows[1].detail == {"failures": 1, "locked": False}
    with store() as session:
        stored_hash = session.scalar(select(Employee.password_hash).where(Employee.employee_id == "E03"))
    assert stored_hash is not None
    everything = json.dumps([[r.action, r.entity, r.entity_id, r.detail] for r in rows], ensure_ascii=False)
    for secret in (PASSWORD, "wrong-password", "not-an-id-but-a-password", stored_hash, stored_hash[-22:]):
        assert secret not in everything


def test_demo_passwords_go_only_to_employees_without_one(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        set_password(session, "E02", "her-own-pass", actor=OPERATOR)

    with demo_store.begin() as session:
        given = set_demo_passwords(session)
    with demo_store.begin() as session:
        again = set_demo_passwords(session)

    assert given == ["E01", "E03", "E04", "E05", "E06", "E07", "E08"]
    assert again == []
    assert sign_in(demo_store, "E08", DEMO_PASSWORD).role == "admin"
    assert sign_in(demo_store, "E02", "her-own-pass").role == "sales"
    with pytest.raises(Unauthenticated):
        sign_in(demo_store, "E02", DEMO_PASSWORD)
    with demo_store() as session:
        assert all(a.has_password for a in list_accounts(session))


def test_a_plain_import_sets_no_password(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        accounts = list_accounts(session)

    assert len(accounts) == 8
    assert not any(a.has_password for a in accounts)
    with pytest.raises(Unauthenticated):
        sign_in(demo_store, "E08", DEMO_PASSWORD)
