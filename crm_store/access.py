"""Who is asking, and which customers they may see: the one home of staff roles and scope.

Every staff service takes an `Actor` and checks it itself; the bot's guess at an intent, a role
claimed in a request body or a button payload are never the authorisation. An actor is built from
the store (`actor_for`): the role and region are the employee's row of today, not what a token
said when it was signed.

Scope of each role over customers (`customer_scope`):

| role      | sees                                                              |
|-----------|-------------------------------------------------------------------|
| `sales`   | the customers they own (`customers.owner_id`)                     |
| `manager` | the customers of their region; region 全国 sees every customer    |
| `service` | the customers of tickets assigned to them                         |
| `admin`   | every customer                                                    |
| customer  | no customer through the staff services (their own data is served |
|           | by the customer-side services after verification)                 |
"""

from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from crm_store.errors import Forbidden, NotFound
from crm_store.models import Customer, Employee, Ticket

__all__ = [
    "ALL_REGIONS",
    "CUSTOMER",
    "STAFF_ROLES",
    "Actor",
    "actor_for",
    "can_see_customer",
    "customer_scope",
    "require_role",
    "require_staff",
    "visible_customer",
]

Role = Literal["customer", "sales", "manager", "service", "admin"]
STAFF_ROLES: Final[frozenset[str]] = frozenset({"sales", "manager", "service", "admin"})
ALL_REGIONS: Final = "全国"
"""A manager whose region is this sees every region."""


@dataclass(frozen=True)
class Actor:
    """The person behind a call: a customer (anonymous or verified) or an employee with a role.

    `employee_id` is set for staff only; `region` is the employee's region (managers' scope).
    """

    role: str
    employee_id: str | None = None
    name: str | None = None
    region: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES and self.employee_id is not None

    @property
    def audit_id(self) -> str | None:
        """What the audit log records as the actor's id."""
        return self.employee_id


CUSTOMER: Final = Actor(role="customer")
"""Anyone not signed in as staff."""


def actor_for(session: Session, employee_id: str) -> Actor:
    """The employee as an actor, with the role and region the store holds today.

    Raises:
        NotFound: No such employee ("employee_not_found").
    """
    employee = session.get(Employee, employee_id)
    if employee is None:
        raise NotFound("employee_not_found", employee_id=employee_id)
    return Actor(
        role=employee.role, employee_id=employee.employee_id, name=employee.name, region=employee.region
    )


def require_staff(actor: Actor) -> None:
    """Raise `Forbidden("staff_only")` unless the actor is a signed-in employee."""
    if not actor.is_staff:
        raise Forbidden("staff_only", role=actor.role)


def require_role(actor: Actor, *roles: str) -> None:
    """Raise `Forbidden("role_not_allowed")` unless the actor is staff with one of `roles`."""
    require_staff(actor)
    if actor.role not in roles:
        raise Forbidden("role_not_allowed", role=actor.role)


def customer_scope(actor: Actor) -> ColumnElement[bool]:
    """A WHERE condition on `Customer` that keeps exactly the customers `actor` may see."""
    if not actor.is_staff:
        return false()
    if actor.role == "admin" or (actor.role == "manager" and actor.region == ALL_REGIONS):
        return true()
    if actor.role == "manager":
        return Customer.region == actor.region if actor.region else false()
    if actor.role == "sales":
        return Customer.owner_id == actor.employee_id
    if actor.role == "service":
        assigned = select(Ticket.customer_id).where(
            Ticket.assignee_id == actor.employee_id, Ticket.customer_id.is_not(None)
        )
        return Customer.customer_id.in_(assigned)
    return false()


def can_see_customer(session: Session, actor: Actor, customer_id: str) -> bool:
    """Whether `actor` may see the customer (False as well when there is no such customer)."""
    found = session.scalar(
        select(Customer.customer_id).where(Customer.customer_id == customer_id, customer_scope(actor))
    )
    return found is not None


def visible_customer(session: Session, actor: Actor, customer_id: str) -> Customer:
    """The customer, if `actor` may see them.

    A customer outside the scope is reported exactly like one that does not exist, so that staff
    cannot probe which ids exist outside their scope.

    Raises:
        Forbidden: The actor is not staff ("staff_only").
        NotFound: No such customer, or one outside the actor's scope ("customer_not_found").
    """
    require_staff(actor)
    customer = session.scalar(
        select(Customer).where(Customer.customer_id == customer_id, customer_scope(actor))
    )
    if customer is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    return customer
