"""Staff accounts: passwords, sign-in and lock-out.

Passwords are stored only as argon2 hashes (pwdlib); no function here returns, logs or audits a
password. Sign-in (`authenticate`) answers the same `Unauthenticated("login_failed")` for an
unknown employee id, an employee without a password and a wrong password, and spends about the
same time on each (an unknown id is checked against a dummy hash), so that the answer does not
tell which employee ids exist.

Lock-out: every failed sign-in of a known employee adds one to `employees.failed_logins`; the
`MAX_FAILED_LOGINS`-th consecutive failure locks the account for `LOCKOUT` (`Locked("login_locked",
until=...)`), and while failures go on after the lock ends each one locks it again. A successful
sign-in or a new password resets the count. While locked, even the right password is refused.
Lock times are real time (UTC), not the CRM's pinned calendar: a lock-out is about elapsed time.

`authenticate` raises after recording the failure: its caller commits also when it raises,
or the count and the audit row are lost.

Tokens (api/auth.py) carry `password_stamp`, a short digest of the stored hash: setting a new
password changes it, so every token issued before is refused from then on.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Final

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.access import Actor, actor_for
from crm_store.audit import audit
from crm_store.clock import TZ
from crm_store.errors import Forbidden, Invalid, Locked, NotFound, Unauthenticated
from crm_store.models import Employee

__all__ = [
    "DEMO_PASSWORD",
    "LOCKOUT",
    "MAX_FAILED_LOGINS",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "OPERATOR",
    "Account",
    "authenticate",
    "hash_password",
    "list_accounts",
    "password_stamp",
    "set_demo_passwords",
    "set_password",
    "stamp_of",
]

MIN_PASSWORD_CHARS: Final = 8
MAX_PASSWORD_CHARS: Final = 128
"""Bounds the work a sign-in request can ask of the hasher."""
MAX_FAILED_LOGINS: Final = 5
LOCKOUT: Final = timedelta(minutes=15)
DEMO_PASSWORD: Final = "demo1234"
"""The password `set_demo_passwords` gives the demo company's employees: for the demo only."""

OPERATOR: Final = Actor(role="operator")
"""Whoever runs `crmbot` on the server: they hold the database already, so they may set any password."""

_ANONYMOUS: Final = Actor(role="anonymous")
"""The actor of a failed sign-in: nobody has proved who they are."""

_hasher: Final = PasswordHash((Argon2Hasher(),))


@cache
def _dummy_hash() -> str:
    """A hash to verify against when there is no account, so that failures take the same time."""
    return _hasher.hash("no such account: a dummy password")


@dataclass(frozen=True)
class Account:
    """An employee's sign-in state, without anything secret."""

    employee_id: str
    name: str
    role: str
    region: str | None
    has_password: bool
    locked_until: datetime | None
    """Set only while the account is locked."""


def _utcnow(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def hash_password(password: str) -> str:
    """The argon2 hash of `password`, after checking its length.

    Raises:
        Invalid: Shorter than `MIN_PASSWORD_CHARS` ("password_too_short") or longer than
            `MAX_PASSWORD_CHARS` ("password_too_long").
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise Invalid("password_too_short", field="password", min_chars=MIN_PASSWORD_CHARS)
    if len(password) > MAX_PASSWORD_CHARS:
        raise Invalid("password_too_long", field="password", max_chars=MAX_PASSWORD_CHARS)
    return _hasher.hash(password)


def password_stamp(session: Session, employee_id: str) -> str | None:
    """A short digest of the employee's password hash (None: no such employee, or no password).

    Tokens carry it, so that a new password ends every session signed in with the old one. A digest
    rather than a piece of the hash: a token is readable by whoever holds it.
    """
    employee = session.get(Employee, employee_id)
    if employee is None or not employee.password_hash:
        return None
    return stamp_of(employee.password_hash)


def stamp_of(password_hash: str) -> str:
    """The `password_stamp` of a stored hash: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


def set_password(session: Session, employee_id: str, password: str, *, actor: Actor) -> None:
    """Give the employee a new password; it also lifts a lock-out and ends their other sessions.

    Allowed to the employee themselves, to an admin and to the `OPERATOR` (the `crmbot` CLI).

    Raises:
        Forbidden: Another employee who is not an admin ("password_change_not_allowed").
        NotFound: No such employee ("employee_not_found").
        Invalid: The password's length (see `hash_password`).
    """
    is_admin = actor.is_staff and actor.role == "admin"
    if not (actor is OPERATOR or is_admin or actor.employee_id == employee_id):
        raise Forbidden("password_change_not_allowed", role=actor.role)
    employee = session.get(Employee, employee_id)
    if employee is None:
        raise NotFound("employee_not_found", employee_id=employee_id)
    employee.password_hash = hash_password(password)
    employee.failed_logins = 0
    employee.locked_until = None
    audit(session, actor, "set_password", entity="employee", entity_id=employee_id, fields=["password"])
    session.flush()


def authenticate(session: Session, employee_id: str, password: str, *, now: datetime | None = None) -> Actor:
    """The employee as an actor, if `password` is theirs and the account is not locked.

    Flushes the failure count and an audit row before it raises: commit in both cases.

    Raises:
        Unauthenticated: Unknown employee id, no password set, or a wrong password ("login_failed").
        Locked: Too many failures in a row ("login_locked", `until`: the end of the lock, Beijing time).
    """
    moment = _utcnow(now)
    employee = session.get(Employee, employee_id)
    if employee is None or not employee.password_hash:
        _hasher.verify(password, _dummy_hash())
        # The id typed may be anything (even a password typed in the wrong box): it is not recorded.
        audit(session, _ANONYMOUS, "login_failed", entity="employee", entity_id=None)
        session.flush()
        raise Unauthenticated("login_failed")
    if employee.locked_until is not None and employee.locked_until > moment:
        audit(session, _ANONYMOUS, "login_refused_locked", entity="employee", entity_id=employee_id)
        session.flush()
        raise Locked("login_locked", until=employee.locked_until.astimezone(TZ))
    valid, new_hash = _hasher.verify_and_update(password[: MAX_PASSWORD_CHARS + 1], employee.password_hash)
    if not valid:
        # An SQL increment: two failures at the same moment both count.
        employee.failed_logins = Employee.failed_logins + 1
        session.flush()
        session.refresh(employee, ["failed_logins"])
        failures = employee.failed_logins
        locked = failures >= MAX_FAILED_LOGINS
        if locked:
            employee.locked_until = moment + LOCKOUT
        audit(
            session,
            _ANONYMOUS,
            "login_failed",
            entity="employee",
            entity_id=employee_id,
            failures=failures,
            locked=locked,
        )
        session.flush()
        if locked:
            raise Locked("login_locked", until=(moment + LOCKOUT).astimezone(TZ))
        raise Unauthenticated("login_failed")
    if new_hash is not None:
        employee.password_hash = new_hash
    employee.failed_logins = 0
    employee.locked_until = None
    actor = actor_for(session, employee_id)
    audit(session, actor, "login", entity="employee", entity_id=employee_id)
    session.flush()
    return actor


def list_accounts(session: Session, *, now: datetime | None = None) -> list[Account]:
    """Every employee's sign-in state, by id."""
    moment = _utcnow(now)
    employees = session.scalars(select(Employee).order_by(Employee.employee_id))
    return [
        Account(
            employee_id=e.employee_id,
            name=e.name,
            role=e.role,
            region=e.region,
            has_password=bool(e.password_hash),
            locked_until=e.locked_until if e.locked_until is not None and e.locked_until > moment else None,
        )
        for e in employees
    ]


def set_demo_passwords(session: Session) -> list[str]:
    """Give `DEMO_PASSWORD` to every employee without a password; returns their ids.

    Only for the demo company (`crmbot up` on an empty store, `crmbot import --demo-passwords`):
    a shop's own import never sets passwords.
    """
    employees = session.scalars(
        select(Employee).where(Employee.password_hash.is_(None)).order_by(Employee.employee_id)
    ).all()
    for employee in employees:
        employee.password_hash = hash_password(DEMO_PASSWORD)
        employee.failed_logins = 0
        employee.locked_until = None
        audit(
            session,
            OPERATOR,
            "set_password",
            entity="employee",
            entity_id=employee.employee_id,
            fields=["password"],
            demo=True,
        )
    session.flush()
    return [e.employee_id for e in employees]
