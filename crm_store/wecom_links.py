"""WeCom (企业微信) members known as employees: who is writing to the company's WeCom app.

A member's `userid` (the callback's FromUserName) is linked to one employee (`employees.wecom_userid`,
unique where set) by an administrator (`crmbot user link-wecom`). A linked member chats as that
employee, exactly as if signed in: the role, region and scope of the store's row of today
(`wecom_actor`, through `crm_store.access.actor_for`).

Only an employee with a sign-in account (a password set: `crmbot user set-password`) may chat from
WeCom: taking the password away (or deleting the employee) closes both doors at once. A lock-out
after wrong passwords does not close WeCom: it guards the password, which WeCom does not use.

Linking and unlinking are audited; the audit names the field, never the userid (it is often the
member's name in pinyin). Errors carry the employee id, never the userid. Services flush; callers commit.
"""

from collections.abc import Iterable
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.access import Actor, actor_for
from crm_store.audit import audit
from crm_store.errors import Conflict, Forbidden, Invalid, NotFound
from crm_store.models import Employee

__all__ = [
    "MAX_USERID_CHARS",
    "link_wecom",
    "unlink_wecom",
    "wecom_actor",
    "wecom_userids",
]

MAX_USERID_CHARS: Final = 64
"""WeCom's own limit on a member's userid (1–64 characters)."""
_CHUNK: Final = 500


def _check_userid(userid: str) -> str:
    cleaned = userid.strip()
    if not cleaned or len(cleaned) > MAX_USERID_CHARS or any(c.isspace() for c in cleaned):
        raise Invalid("wecom_userid_invalid", field="wecom_userid", max_length=MAX_USERID_CHARS)
    return cleaned


def link_wecom(session: Session, employee_id: str, userid: str, *, actor: Actor) -> bool:
    """Link a WeCom member to an employee (replacing the employee's earlier link); audited.

    Returns:
        True when something changed, False when they were already linked so.

    Raises:
        Invalid: An empty, over-long or spaced userid ("wecom_userid_invalid").
        NotFound: No such employee ("employee_not_found").
        Conflict: The member is linked to another employee ("wecom_userid_taken", `employee_id`:
            that employee); unlink them first.
    """
    cleaned = _check_userid(userid)
    employee = session.get(Employee, employee_id)
    if employee is None:
        raise NotFound("employee_not_found", employee_id=employee_id)
    if employee.wecom_userid == cleaned:
        return False
    holder = session.scalar(select(Employee.employee_id).where(Employee.wecom_userid == cleaned))
    if holder is not None:
        raise Conflict("wecom_userid_taken", employee_id=holder)
    employee.wecom_userid = cleaned
    audit(session, actor, "link_wecom", entity="employee", entity_id=employee_id, fields=["wecom_userid"])
    session.flush()
    return True


def unlink_wecom(session: Session, employee_id: str, *, actor: Actor) -> bool:
    """Remove an employee's WeCom link; audited. Returns False when there was none.

    Raises:
        NotFound: No such employee ("employee_not_found").
    """
    employee = session.get(Employee, employee_id)
    if employee is None:
        raise NotFound("employee_not_found", employee_id=employee_id)
    if employee.wecom_userid is None:
        return False
    employee.wecom_userid = None
    audit(session, actor, "unlink_wecom", entity="employee", entity_id=employee_id, fields=["wecom_userid"])
    session.flush()
    return True


def wecom_actor(session: Session, userid: str) -> Actor:
    """The employee a WeCom member is, as an actor with today's role, region and scope.

    Raises:
        NotFound: No employee is linked to this member ("wecom_user_not_linked").
        Forbidden: The employee has no sign-in account (no password) or no staff role
            ("wecom_account_inactive", `employee_id`).
    """
    employee = session.scalar(select(Employee).where(Employee.wecom_userid == userid))
    if employee is None:
        raise NotFound("wecom_user_not_linked")
    actor = actor_for(session, employee.employee_id)
    if not employee.password_hash or not actor.is_staff:
        raise Forbidden("wecom_account_inactive", employee_id=employee.employee_id)
    return actor


def wecom_userids(session: Session, employee_ids: Iterable[str] | None = None) -> dict[str, str]:
    """The WeCom userid of each linked employee among `employee_ids` (every employee when None)."""
    linked = select(Employee.employee_id, Employee.wecom_userid).where(Employee.wecom_userid.is_not(None))
    if employee_ids is None:
        return {row.employee_id: str(row.wecom_userid) for row in session.execute(linked)}
    wanted = sorted(set(employee_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = session.execute(linked.where(Employee.employee_id.in_(chunk)))
        found.update({row.employee_id: str(row.wecom_userid) for row in rows})
    return found
