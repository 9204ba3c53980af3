"""Reminders of the signed-in employee: follow-ups due, birthdays coming, customers who stopped buying.

"今天要跟进谁", "这周谁过生日", "哪些客户很久没下单了" all read `reminders(...)`:

- **Follow-ups due**: the actor's open tasks (status 待办) due today or earlier, whatever their age
  (a task is an explicit promise); plus the next steps of the actor's own interactions whose
  `next_date` is today or in the last `FOLLOW_UP_LOOKBACK_DAYS` days, when that interaction is still
  the customer's latest one (a later contact took the next step up) and no open task of the actor
  for that customer is due the same day (a logged visit creates both; it is listed once).
  Tasks are listed by due date, oldest first.
- **Birthdays** of customers in the actor's scope within the next `days` days (today included),
  soonest first; 29 February counts as 28 February in other years (`next_birthday`). Opted-out
  customers are listed with `opt_out` set: staff may still greet them in person, no message is sent.
- **Lapsed customers** in the actor's scope by the one lapse rule (`crm_store.lapse`), the furthest
  past their rhythm first, at most `LAPSED_SHOWN` (the total is given).
- **Care notices**: what proactive care sent to the actor's staff inbox in the last
  `NOTICE_LOOKBACK_DAYS` days (complaint deadlines among them, which no other section lists), the
  newest `NOTICES_SHOWN`, read or not: the chat shows each once as it arrives, this list again.

`complete_task` marks an open task done: only its owner or an admin may, and it is audited.
"""

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import Exists, and_, extract, or_, select
from sqlalchemy.orm import Session, aliased

from crm_store import clock
from crm_store.access import Actor, customer_scope, require_staff
from crm_store.audit import audit
from crm_store.errors import Conflict, Forbidden, NotFound
from crm_store.lapse import LapsedCustomer, lapsed_customers
from crm_store.models import Customer, Interaction, Task
from crm_store.outbox import InboxMessage, inbox
from crm_store.vocab import TASK_STATUS_OPEN, TASK_STATUSES

__all__ = [
    "BIRTHDAY_DAYS",
    "BirthdayReminder",
    "FollowUp",
    "Reminders",
    "complete_task",
    "next_birthday",
    "reminders",
    "superseded_interaction",
]

BIRTHDAY_DAYS: Final = 7
"""Birthdays within this many days ahead (today included) are listed."""

FOLLOW_UP_LOOKBACK_DAYS: Final = 30
"""An interaction's next step older than this is no longer a reminder (the lapse list covers the rest)."""

LAPSED_SHOWN: Final = 20
NOTICES_SHOWN: Final = 8
NOTICE_LOOKBACK_DAYS: Final = 3
FOLLOW_UPS_SHOWN: Final = 50
TASK_STATUS_DONE: Final = TASK_STATUSES[1]


def _birthday_in(birthday: date, year: int) -> date:
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


def next_birthday(birthday: date, today: date) -> date:
    """The next date, today or later, the birthday is celebrated (29 Feb → 28 Feb in other years)."""
    this_year = _birthday_in(birthday, today.year)
    return this_year if this_year >= today else _birthday_in(birthday, today.year + 1)


@dataclass(frozen=True)
class FollowUp:
    """A follow-up due: an open task (`task_id`) or an interaction's next step (`interaction_id`)."""

    kind: str  # "task" or "interaction"
    task_id: int | None
    interaction_id: str | None
    customer_id: str | None
    customer_name: str | None
    title: str
    due_date: date
    days_overdue: int


@dataclass(frozen=True)
class BirthdayReminder:
    customer_id: str
    name: str
    birthday: date
    days_until: int
    opt_out: bool


@dataclass(frozen=True)
class Reminders:
    """What the employee should act on today."""

    today: date
    follow_ups: tuple[FollowUp, ...]
    birthdays: tuple[BirthdayReminder, ...]
    lapsed: tuple[LapsedCustomer, ...]
    lapsed_total: int
    notices: tuple[InboxMessage, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.follow_ups or self.birthdays or self.lapsed or self.notices)

    def to_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "follow_ups": [
                {
                    "kind": f.kind,
                    "task_id": f.task_id,
                    "interaction_id": f.interaction_id,
                    "customer_id": f.customer_id,
                    "customer_name": f.customer_name,
                    "title": f.title,
                    "due_date": f.due_date.isoformat(),
                    "days_overdue": f.days_overdue,
                }
                for f in self.follow_ups
            ],
            "birthdays": [
                {
                    "customer_id": b.customer_id,
                    "name": b.name,
                    "birthday": b.birthday.isoformat(),
                    "days_until": b.days_until,
                    "opt_out": b.opt_out,
                }
                for b in self.birthdays
            ],
            "lapsed": [
                {
                    "customer_id": c.customer_id,
                    "name": c.name,
                    "last_order_date": c.last_order_date.isoformat(),
                    "days_since_last_order": c.days_since_last_order,
                    "threshold_days": c.threshold_days,
                }
                for c in self.lapsed
            ],
            "lapsed_total": self.lapsed_total,
            "notices": [n.to_json() for n in self.notices],
        }


def superseded_interaction() -> Exists:
    """A condition on `Interaction`: a later contact with the same customer exists (it took the next
    step up), so this interaction's next date is no longer a reminder."""
    later = aliased(Interaction)
    return (
        select(later.interaction_id)
        .where(
            later.customer_id == Interaction.customer_id,
            or_(
                later.occurred_at > Interaction.occurred_at,
                and_(
                    later.occurred_at == Interaction.occurred_at,
                    later.interaction_id > Interaction.interaction_id,
                ),
            ),
        )
        .exists()
    )


def _follow_ups(session: Session, actor: Actor, today: date) -> list[FollowUp]:
    tasks = session.execute(
        select(Task, Customer.name)
        .outerjoin(Customer, Customer.customer_id == Task.customer_id)
        .where(Task.owner_id == actor.employee_id, Task.status == TASK_STATUS_OPEN, Task.due_date <= today)
        .order_by(Task.due_date, Task.id)
        .limit(FOLLOW_UPS_SHOWN)
    ).all()
    found = [
        FollowUp(
            "task",
            task.id,
            None,
            task.customer_id,
            name,
            task.title,
            task.due_date,
            (today - task.due_date).days,
        )
        for task, name in tasks
    ]
    covered = {(f.customer_id, f.due_date) for f in found}
    superseded = superseded_interaction()
    steps = session.execute(
        select(Interaction, Customer.name)
        .join(Customer, Customer.customer_id == Interaction.customer_id)
        .where(
            Interaction.employee_id == actor.employee_id,
            Interaction.next_date <= today,
            Interaction.next_date >= today - timedelta(days=FOLLOW_UP_LOOKBACK_DAYS),
            ~superseded,
        )
        .order_by(Interaction.next_date, Interaction.interaction_id)
        .limit(FOLLOW_UPS_SHOWN)
    ).all()
    for interaction, name in steps:
        due = interaction.next_date
        if due is None or (interaction.customer_id, due) in covered:
            continue
        title = interaction.next_step or interaction.summary
        found.append(
            FollowUp(
                "interaction",
                None,
                interaction.interaction_id,
                interaction.customer_id,
                name,
                title,
                due,
                (today - due).days,
            )
        )
    found.sort(key=lambda f: (f.due_date, f.kind, f.task_id or 0, f.interaction_id or ""))
    return found[:FOLLOW_UPS_SHOWN]


def _birthdays(session: Session, actor: Actor, today: date, days: int) -> list[BirthdayReminder]:
    window = [today + timedelta(days=offset) for offset in range(max(days, 0) + 1)]
    month = extract("month", Customer.birthday)
    day = extract("day", Customer.birthday)
    wanted = {(d.month, d.day) for d in window}
    # 29 February birthdays are kept on 28 February in other years.
    wanted |= {(2, 29) for d in window if d.month == 2 and d.day == 28 and not calendar.isleap(d.year)}
    if not wanted:
        return []
    rows = session.execute(
        select(Customer.customer_id, Customer.name, Customer.birthday, Customer.opt_out).where(
            Customer.birthday.is_not(None),
            or_(*(and_(month == m, day == d) for m, d in sorted(wanted))),
            customer_scope(actor),
        )
    ).all()
    found: list[BirthdayReminder] = []
    for customer_id, name, birthday, opt_out in rows:
        if birthday is None:  # excluded by the query; for the type checker
            continue
        upcoming = next_birthday(birthday, today)
        if (upcoming - today).days <= days:
            found.append(
                BirthdayReminder(customer_id, name, upcoming, (upcoming - today).days, bool(opt_out))
            )
    found.sort(key=lambda b: (b.days_until, b.customer_id))
    return found


def reminders(session: Session, actor: Actor, *, today: date, days: int = BIRTHDAY_DAYS) -> Reminders:
    """The actor's follow-ups, birthdays within `days`, lapsed customers, care notices (module docstring).

    Raises:
        Forbidden: The actor is not staff ("staff_only").
    """
    require_staff(actor)
    lapsed = lapsed_customers(session, today=today, scope=customer_scope(actor))
    since = datetime.combine(today - timedelta(days=NOTICE_LOOKBACK_DAYS), time(), tzinfo=clock.TZ)
    notices = inbox(session, employee_id=actor.employee_id, sent_since=since, limit=NOTICES_SHOWN)
    return Reminders(
        today=today,
        follow_ups=tuple(_follow_ups(session, actor, today)),
        birthdays=tuple(_birthdays(session, actor, today, days)),
        lapsed=tuple(lapsed[:LAPSED_SHOWN]),
        lapsed_total=len(lapsed),
        notices=tuple(sorted(notices, key=lambda n: (n.sent_at is not None, n.sent_at, n.id), reverse=True)),
    )


def complete_task(session: Session, actor: Actor, task_id: int) -> FollowUp:
    """Mark an open task done (已完成); only its owner or an admin may. Audited.

    Raises:
        Forbidden: Not staff ("staff_only"), or neither the owner nor an admin ("task_not_yours").
        NotFound: No such task ("task_not_found").
        Conflict: The task is not open any more ("task_not_open").
    """
    require_staff(actor)
    task = session.get(Task, task_id, with_for_update=True)
    if task is None:
        raise NotFound("task_not_found", task_id=task_id)
    if actor.role != "admin" and task.owner_id != actor.employee_id:
        raise Forbidden("task_not_yours", task_id=task_id)
    if task.status != TASK_STATUS_OPEN:
        raise Conflict("task_not_open", task_id=task_id, status=task.status)
    task.status = TASK_STATUS_DONE
    audit(
        session,
        actor,
        "complete_task",
        entity="task",
        entity_id=str(task_id),
        changes=[("status", TASK_STATUS_OPEN, TASK_STATUS_DONE)],
        customer_id=task.customer_id,
    )
    session.flush()
    name = session.scalar(select(Customer.name).where(Customer.customer_id == task.customer_id))
    overdue = (clock.today() - task.due_date).days
    return FollowUp("task", task.id, None, task.customer_id, name, task.title, task.due_date, overdue)
