"""The rules of proactive care: each a function of (session, moment, settings) → the events due now.

A rule only decides; `care.run` renders the texts, queues them exactly once and sends them. Every
event carries its dedupe key `rule:subject:occasion:audience:channel` (`crm_store.outbox.dedupe_key`),
chosen so that deciding it again, later the same day or in another process, queues nothing new.

- `birthday`: the owner, once, when the birthday is within `care_birthday_lead_days` (occasion:
  the birthday); the customer by `channel_pref` on the day (29 Feb: on 28 Feb in other years).
- `lapse`: the owner, with last order, spend and open tickets, once per lapse (`crm_store.lapse`;
  occasion: the last counted order's day); the customer a win-back, once per lapse and at most
  once in `care_winback_days`.
- `follow_up`: whoever logged the interaction / owns the task, on the day its next step or task is
  due (occasion: that day).
- `sla`: the assignee at `care_sla_warn_percent` of the SLA time (occasion `{deadline day}:80`);
  the manager of the customer's region past the deadline (`{deadline day}:breach`).
- `replenishment`: the customer, `care_replenishment_lead_days` before a consumable runs out
  (occasion: the run-out day; subject `customer+product`).

**Who is staff.** A reminder about a customer goes to their owner; a customer without an owner, or
whose owner is no longer an employee, has their region's manager, else a 全国 manager, else an
admin (`StaffDirectory.stand_in`) — so nothing is dropped. The same chain escalates a breached SLA.

**Customer channels.** `channel_pref` (`email`, `sms`, `wechat`, `web`; none → `web`, the chat's
inbox). A customer who opted out gets nothing: the event is recorded as skipped with reason
`opt_out`, and the sender checks again before sending. An e-mail without an address, or an SMS
without a phone, is skipped with `no_address`. Staff reminders about an opted-out customer still go.

**Tickets without a deadline.** Imported tickets have no `due_at`: their deadline is derived as the
start of their `opened_at` day (00:00 Beijing time) plus `crm_store.complaints.SLA_HOURS` of their
priority — the earliest it could have been, so an old open ticket is escalated rather than forgotten.

**Replenishment.** For products of `care_consumable_categories`, bought on at least two days: the
customer's own pace is the days between their first and last purchase over the units bought before
the last one; the last purchase runs out `last quantity × pace` days after it. The reminder is due
from `care_replenishment_lead_days` before that day until the day itself (once).

Every query is set-based: the rules read only the customers, tickets or pairs that are due (the
lapse rule computes the lapsed set in one statement on PostgreSQL), never every customer.
"""

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple

from sqlalchemy import ColumnElement, Float, and_, cast, extract, func, or_, select
from sqlalchemy.orm import Session, aliased

from care.texts import salutation
from crm_store import clock
from crm_store.access import ALL_REGIONS
from crm_store.complaints import SLA_HOURS
from crm_store.formatting import cn_date, cn_time
from crm_store.lapse import counted_order_condition, lapsed_customers, lapsed_statement, population_median_gap
from crm_store.models import Customer, Employee, Interaction, Order, OrderItem, Outbox, Product, Task, Ticket
from crm_store.outbox import CUSTOMER_INBOX_CHANNEL, dedupe_key
from crm_store.reminders import next_birthday, superseded_interaction
from crm_store.settings import CareSettings
from crm_store.staff_formatting import money
from crm_store.vocab import (
    CARE_AUDIENCE_CUSTOMER,
    CARE_AUDIENCE_STAFF,
    CARE_RULE_BIRTHDAY,
    CARE_RULE_FOLLOW_UP,
    CARE_RULE_LAPSE,
    CARE_RULE_REPLENISHMENT,
    CARE_RULE_SLA,
    CARE_STAFF_CHANNEL,
    CHANNEL_PREFS,
    OUTBOX_STATUS_SKIPPED,
    TASK_STATUS_OPEN,
    TICKET_OPEN_STATUSES,
)

__all__ = [
    "RULES",
    "DueEvent",
    "StaffDirectory",
    "birthday_events",
    "follow_up_events",
    "lapse_events",
    "replenishment_events",
    "sla_events",
]

REASON_OPT_OUT: Final = "opt_out"
REASON_NO_ADDRESS: Final = "no_address"
_CHUNK: Final = 1000
_NO_CUSTOMER: Final = "无"


@dataclass(frozen=True)
class DueEvent:
    """One message a rule says is due: to whom, through which channel, with which template and values.

    `skip_reason` is set when the message must not go out (`opt_out`, `no_address`): it is recorded
    as skipped and reported once.
    """

    rule: str
    audience: str
    subject: str
    occasion: str
    customer_id: str | None
    employee_id: str | None
    channel: str
    template: str
    fields: dict[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.rule, self.subject, self.occasion, self.audience, self.channel)


@dataclass(frozen=True)
class _Person:
    employee_id: str
    name: str


@dataclass(frozen=True)
class StaffDirectory:
    """The employees, read once per run (a company has tens or hundreds, not millions)."""

    names: dict[str, str]
    managers_by_region: dict[str, str]
    national_manager: str | None
    admin: str | None

    @classmethod
    def load(cls, session: Session) -> "StaffDirectory":
        names: dict[str, str] = {}
        by_region: dict[str, str] = {}
        national: str | None = None
        admin: str | None = None
        for employee in session.scalars(select(Employee).order_by(Employee.employee_id)):
            names[employee.employee_id] = employee.name
            if employee.role == "manager":
                if employee.region == ALL_REGIONS:
                    national = national or employee.employee_id
                elif employee.region:
                    by_region.setdefault(employee.region, employee.employee_id)
            elif employee.role == "admin":
                admin = admin or employee.employee_id
        return cls(names, by_region, national, admin)

    def manager_of(self, region: str | None) -> _Person | None:
        """The manager of `region`, else a 全国 manager, else an admin; None in an empty company."""
        chosen = (
            (self.managers_by_region.get(region) if region else None) or self.national_manager or self.admin
        )
        return _Person(chosen, self.names[chosen]) if chosen else None

    def stand_in(self, employee_id: str | None, region: str | None) -> _Person | None:
        """The employee if they exist, else the manager chain of `manager_of`."""
        if employee_id is not None and employee_id in self.names:
            return _Person(employee_id, self.names[employee_id])
        return self.manager_of(region)


@dataclass(frozen=True)
class _CustomerRow:
    customer_id: str
    name: str
    gender: str | None
    region: str | None
    owner_id: str | None
    channel_pref: str | None
    opt_out: bool
    email: str | None
    phone: str | None


_CUSTOMER_COLUMNS = (
    Customer.customer_id,
    Customer.name,
    Customer.gender,
    Customer.region,
    Customer.owner_id,
    Customer.channel_pref,
    Customer.opt_out,
    Customer.email,
    Customer.phone,
)


def _customer(row: Sequence[Any]) -> _CustomerRow:
    return _CustomerRow(*row[: len(_CUSTOMER_COLUMNS)])


def _today(now: datetime) -> date:
    return now.astimezone(clock.TZ).date()


def _staff_event(
    rule: str,
    subject: str,
    occasion: str,
    person: _Person | None,
    customer_id: str | None,
    template: str,
    fields: dict[str, Any],
) -> DueEvent | None:
    if person is None:
        return None
    return DueEvent(
        rule=rule,
        audience=CARE_AUDIENCE_STAFF,
        subject=subject,
        occasion=occasion,
        customer_id=customer_id,
        employee_id=person.employee_id,
        channel=CARE_STAFF_CHANNEL,
        template=template,
        fields={"employee_name": person.name, **fields},
    )


def _customer_event(
    rule: str, subject: str, occasion: str, customer: _CustomerRow, template: str, fields: dict[str, Any]
) -> DueEvent:
    channel = customer.channel_pref if customer.channel_pref in CHANNEL_PREFS else CUSTOMER_INBOX_CHANNEL
    reason: str | None = None
    if customer.opt_out:
        reason = REASON_OPT_OUT
    elif (channel == "email" and not customer.email) or (channel == "sms" and not customer.phone):
        reason = REASON_NO_ADDRESS
    return DueEvent(
        rule=rule,
        audience=CARE_AUDIENCE_CUSTOMER,
        subject=subject,
        occasion=occasion,
        customer_id=customer.customer_id,
        employee_id=None,
        channel=channel,
        template=template,
        fields={"salutation": salutation(customer.name, customer.gender), **fields},
        skip_reason=reason,
    )


# ---------------------------------------------------------------------------------------------- birthday


def _celebrated_on(day: date) -> set[tuple[int, int]]:
    """The (month, day) birthdays celebrated on `day`: 28 Feb of a common year also takes 29 Feb."""
    found = {(day.month, day.day)}
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        found.add((2, 29))
    return found


def birthday_events(session: Session, now: datetime, settings: CareSettings) -> list[DueEvent]:
    """Owners reminded of birthdays within `care_birthday_lead_days`; customers greeted on the day.

    The reminder's occasion is the day of the birthday, so the owner hears once whatever the lead;
    an opted-out customer's owner is still reminded (with a note) and the greeting is skipped.
    """
    today = _today(now)
    lead = settings.care_birthday_lead_days
    wanted: set[tuple[int, int]] = set()
    for offset in range(lead + 1):
        wanted |= _celebrated_on(today + timedelta(days=offset))
    month = extract("month", Customer.birthday)
    day = extract("day", Customer.birthday)
    rows = session.execute(
        select(*_CUSTOMER_COLUMNS, Customer.birthday).where(
            Customer.birthday.is_not(None), or_(*(and_(month == m, day == d) for m, d in sorted(wanted)))
        )
    ).all()
    directory = StaffDirectory.load(session)
    events: list[DueEvent] = []
    for row in rows:
        customer = _customer(row)
        birthday = row[-1]
        if birthday is None:  # excluded by the query; for the type checker
            continue
        upcoming = next_birthday(birthday, today)
        if (upcoming - today).days > lead:
            continue
        occasion = upcoming.isoformat()
        staff = _staff_event(
            CARE_RULE_BIRTHDAY,
            customer.customer_id,
            occasion,
            directory.stand_in(customer.owner_id, customer.region),
            customer.customer_id,
            "birthday.staff_opt_out" if customer.opt_out else "birthday.staff",
            {
                "customer_name": customer.name,
                "customer_id": customer.customer_id,
                "birthday": cn_date(upcoming, today=today),
            },
        )
        if staff is not None:
            events.append(staff)
        if upcoming == today:
            events.append(
                _customer_event(
                    CARE_RULE_BIRTHDAY, customer.customer_id, occasion, customer, "birthday.customer", {}
                )
            )
    return events


# ------------------------------------------------------------------------------------------------- lapse


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class _Lapse(NamedTuple):
    """One lapsed customer with all a lapse nudge and win-back need, whichever engine computed it.

    A named tuple rather than a frozen dataclass: hundreds of thousands are built per run.
    """

    customer: _CustomerRow
    last_order_date: date
    days_since: int
    threshold: int
    order_count: int
    spend: Decimal
    open_tickets: int
    recent_winback: bool


def _open_tickets() -> Any:
    """Open tickets per customer (a subquery)."""
    return (
        select(Ticket.customer_id.label("customer_id"), func.count().label("open_tickets"))
        .where(Ticket.status.in_(sorted(TICKET_OPEN_STATUSES)))
        .group_by(Ticket.customer_id)
        .subquery("open_tickets")
    )


def _recent_winbacks(since: datetime) -> Any:
    """Customers sent a lapse win-back after `since` (a subquery; skipped ones do not count)."""
    return (
        select(Outbox.customer_id.label("customer_id"))
        .where(
            Outbox.customer_id.is_not(None),
            Outbox.kind == CARE_RULE_LAPSE,
            Outbox.employee_id.is_(None),
            Outbox.status != OUTBOX_STATUS_SKIPPED,
            Outbox.created_at > since,
        )
        .distinct()
        .subquery("recent_winbacks")
    )


def _lapses_in_one_statement(session: Session, today: date, since: datetime) -> list[_Lapse]:
    """PostgreSQL: the lapse statement with the customer row, open tickets and recent win-backs joined.

    One round trip for the hundreds of thousands of lapsed customers of a 1M-customer store
    (bench/care_scale.py): the lapsed set already joins the customers, and the ticket counts and
    recent win-backs are small hash joins.
    """
    population = population_median_gap(session, today=today)
    tickets = _open_tickets()
    recent = _recent_winbacks(since)
    statement = (
        lapsed_statement(today=today, scope=None, population=population)
        .add_columns(*_CUSTOMER_COLUMNS, tickets.c.open_tickets, recent.c.customer_id)
        .outerjoin(tickets, tickets.c.customer_id == Customer.customer_id)
        .outerjoin(recent, recent.c.customer_id == Customer.customer_id)
    )
    # Row: the 7 columns of `lapsed_statement`, the customer's, open tickets, a recent win-back's id.
    end = 7 + len(_CUSTOMER_COLUMNS)
    return [
        _Lapse(
            customer=_CustomerRow(*row[7:end]),
            last_order_date=row[2],
            days_since=int(row[3]),
            threshold=int(row[4]),
            order_count=int(row[5]),
            spend=Decimal(row[6] or 0),
            open_tickets=int(row[end] or 0),
            recent_winback=row[end + 1] is not None,
        )
        for row in session.execute(statement)
    ]


def _lapses_in_chunks(session: Session, today: date, since: datetime) -> list[_Lapse]:
    """SQLite (small stores): `lapsed_customers`, then the customers, tickets and win-backs by chunks."""
    lapsed = lapsed_customers(session, today=today)
    ids = [c.customer_id for c in lapsed]
    tickets = _open_tickets()
    recent = _recent_winbacks(since)
    customers: dict[str, _CustomerRow] = {}
    open_tickets: dict[str, int] = {}
    winbacks: set[str] = set()
    for chunk in _chunks(ids):
        for row in session.execute(
            select(*_CUSTOMER_COLUMNS, tickets.c.open_tickets, recent.c.customer_id)
            .outerjoin(tickets, tickets.c.customer_id == Customer.customer_id)
            .outerjoin(recent, recent.c.customer_id == Customer.customer_id)
            .where(Customer.customer_id.in_(chunk))
        ):
            customers[row[0]] = _customer(row)
            open_tickets[row[0]] = int(row[-2] or 0)
            if row[-1] is not None:
                winbacks.add(row[0])
    return [
        _Lapse(
            customer=customers[c.customer_id],
            last_order_date=c.last_order_date,
            days_since=c.days_since_last_order,
            threshold=c.threshold_days,
            order_count=c.order_count,
            spend=c.spend,
            open_tickets=open_tickets[c.customer_id],
            recent_winback=c.customer_id in winbacks,
        )
        for c in lapsed
    ]


def lapse_events(session: Session, now: datetime, settings: CareSettings) -> list[DueEvent]:
    """A nudge to the owner of each lapsed customer (`crm_store.lapse`), and a win-back to the customer.

    Both are decided once per lapse (the occasion is the last counted order's day); the win-back is
    left out when the customer had one in the last `care_winback_days`. On PostgreSQL everything
    comes from one statement (`_lapses_in_one_statement`: 234,528 lapsed customers at 1M customers);
    on SQLite from `lapsed_customers` and a few chunked queries. No query runs per customer.
    """
    today = _today(now)
    since = now - timedelta(days=settings.care_winback_days)
    if session.get_bind().dialect.name == "postgresql":
        lapses = _lapses_in_one_statement(session, today, since)
    else:
        lapses = _lapses_in_chunks(session, today, since)
    if not lapses:
        return []
    # The order of `lapsed_customers`: furthest past their rhythm first.
    lapses.sort(key=lambda lapse: (lapse.threshold - lapse.days_since, lapse.customer.customer_id))
    directory = StaffDirectory.load(session)
    # Hundreds of thousands of events share a few hundred days and staff: format each once.
    days: dict[date, str] = {}
    people: dict[tuple[str | None, str | None], _Person | None] = {}
    events: list[DueEvent] = []
    for lapse in lapses:
        customer = lapse.customer
        occasion = lapse.last_order_date.isoformat()
        last_order = days.get(lapse.last_order_date)
        if last_order is None:
            last_order = days[lapse.last_order_date] = cn_date(lapse.last_order_date, today=today)
        key = (customer.owner_id, customer.region)
        if key not in people:
            people[key] = directory.stand_in(customer.owner_id, customer.region)
        staff = _staff_event(
            CARE_RULE_LAPSE,
            customer.customer_id,
            occasion,
            people[key],
            customer.customer_id,
            "lapse.staff",
            {
                "customer_name": customer.name,
                "customer_id": customer.customer_id,
                "days_since": lapse.days_since,
                "threshold": lapse.threshold,
                "last_order": last_order,
                "spend": money(lapse.spend),
                "order_count": lapse.order_count,
                "open_tickets": f"{lapse.open_tickets}个" if lapse.open_tickets else "无",
            },
        )
        if staff is not None:
            events.append(staff)
        if not lapse.recent_winback:
            events.append(
                _customer_event(
                    CARE_RULE_LAPSE, customer.customer_id, occasion, customer, "lapse.customer", {}
                )
            )
    return events


# --------------------------------------------------------------------------------------------- follow-up


def follow_up_events(session: Session, now: datetime, settings: CareSettings) -> list[DueEvent]:
    """Remind staff, the morning they are due, of interactions' next steps and open tasks due today.

    An interaction's next step goes to the employee who logged it (the customer's owner, then the
    manager chain, when that employee is gone); it is left out when a later contact with the
    customer exists (the step was taken up) or when an open task of the same employee for the same
    customer is due today (a logged visit creates both; the task is the reminder).
    """
    del settings  # every value of this rule is the due date itself
    today = _today(now)
    directory = StaffDirectory.load(session)
    events: list[DueEvent] = []
    occasion = today.isoformat()

    tasks = session.execute(
        select(Task.id, Task.owner_id, Task.customer_id, Task.title, Customer.name, Customer.region)
        .outerjoin(Customer, Customer.customer_id == Task.customer_id)
        .where(Task.status == TASK_STATUS_OPEN, Task.due_date == today)
        .order_by(Task.id)
    ).all()
    covered: set[tuple[str, str | None]] = set()
    for task_id, owner_id, customer_id, title, customer_name, region in tasks:
        covered.add((owner_id, customer_id))
        event = _staff_event(
            CARE_RULE_FOLLOW_UP,
            f"task-{task_id}",
            occasion,
            directory.stand_in(owner_id, region),
            customer_id,
            "follow_up.task",
            {"title": title, "customer_name": customer_name or _NO_CUSTOMER},
        )
        if event is not None:
            events.append(event)

    superseded = superseded_interaction()
    steps = session.execute(
        select(
            Interaction.interaction_id,
            Interaction.employee_id,
            Interaction.kind,
            Interaction.occurred_at,
            Interaction.next_step,
            Interaction.summary,
            Customer.customer_id,
            Customer.name,
            Customer.owner_id,
            Customer.region,
        )
        .join(Customer, Customer.customer_id == Interaction.customer_id)
        .where(Interaction.next_date == today, ~superseded)
        .order_by(Interaction.interaction_id)
    ).all()
    for (
        interaction_id,
        employee_id,
        kind,
        occurred_at,
        next_step,
        summary,
        customer_id,
        name,
        owner,
        region,
    ) in steps:
        if (employee_id, customer_id) in covered:
            continue
        person = directory.stand_in(employee_id if employee_id in directory.names else owner, region)
        event = _staff_event(
            CARE_RULE_FOLLOW_UP,
            interaction_id,
            occasion,
            person,
            customer_id,
            "follow_up.interaction",
            {
                "customer_name": name,
                "customer_id": customer_id,
                "next_step": next_step or summary,
                "occurred_at": cn_date(occurred_at, today=today),
                "kind": kind,
            },
        )
        if event is not None:
            events.append(event)
    return events


# --------------------------------------------------------------------------------------------------- SLA


def ticket_deadline(due_at: datetime | None, opened_at: date, priority: str) -> datetime:
    """A ticket's deadline: `due_at`, or for an imported ticket its opening day's 00:00 + SLA hours."""
    if due_at is not None:
        return due_at
    start = datetime.combine(opened_at, time(0, 0), tzinfo=clock.TZ)
    return start + timedelta(hours=SLA_HOURS.get(priority, max(SLA_HOURS.values())))


def _ticket_start(assigned_at: datetime | None, opened_at: date) -> datetime:
    return (
        assigned_at if assigned_at is not None else datetime.combine(opened_at, time(0, 0), tzinfo=clock.TZ)
    )


def sla_events(session: Session, now: datetime, settings: CareSettings) -> list[DueEvent]:
    """Open tickets at `care_sla_warn_percent` of their SLA → assignee; past it → the region's manager.

    Only open tickets near or past their deadline are read: those with `due_at` within the warning
    window of the longest SLA, and those without `due_at` (imported; deadline derived, see above).
    """
    share = settings.care_sla_warn_percent / 100
    horizon = now + timedelta(hours=max(SLA_HOURS.values()) * (1 - share))
    assignee = aliased(Employee)
    rows = session.execute(
        select(
            Ticket.ticket_id,
            Ticket.category,
            Ticket.priority,
            Ticket.opened_at,
            Ticket.assigned_at,
            Ticket.due_at,
            Ticket.assignee_id,
            assignee.name,
            assignee.region,
            Customer.customer_id,
            Customer.name,
            Customer.region,
        )
        .outerjoin(assignee, assignee.employee_id == Ticket.assignee_id)
        .outerjoin(Customer, Customer.customer_id == Ticket.customer_id)
        .where(
            Ticket.status.in_(sorted(TICKET_OPEN_STATUSES)),
            or_(Ticket.due_at.is_(None), Ticket.due_at <= horizon),
            Ticket.opened_at <= _today(now),
        )
        .order_by(Ticket.ticket_id)
    ).all()
    directory = StaffDirectory.load(session)
    events: list[DueEvent] = []
    for (
        ticket_id,
        category,
        priority,
        opened_at,
        assigned_at,
        due_at,
        assignee_id,
        assignee_name,
        assignee_region,
        customer_id,
        customer_name,
        customer_region,
    ) in rows:
        deadline = ticket_deadline(due_at, opened_at, priority)
        start = _ticket_start(assigned_at, opened_at)
        warn_at = start + (deadline - start) * share
        local_day = deadline.astimezone(clock.TZ).date().isoformat()
        fields = {
            "ticket_id": ticket_id,
            "category": category,
            "priority": priority,
            "customer_name": customer_name or _NO_CUSTOMER,
            "deadline": cn_time(deadline),
            "percent": settings.care_sla_warn_percent,
            "assignee_name": assignee_name or "未分配",
        }
        region = customer_region or assignee_region
        if now >= deadline:
            event = _staff_event(
                CARE_RULE_SLA,
                ticket_id,
                f"{local_day}:breach",
                directory.manager_of(region),
                customer_id,
                "sla.breach",
                fields,
            )
        elif now >= warn_at:
            event = _staff_event(
                CARE_RULE_SLA,
                ticket_id,
                f"{local_day}:{settings.care_sla_warn_percent}",
                directory.stand_in(assignee_id, region),
                customer_id,
                "sla.warn",
                fields,
            )
        else:
            event = None
        if event is not None:
            events.append(event)
    return events


# ----------------------------------------------------------------------------------------- replenishment


def _day_number(column: Any, dialect: str) -> ColumnElement[Any]:
    """Days since 1970-01-01 of a DATE column, as a float, on PostgreSQL or SQLite."""
    if dialect == "postgresql":
        return cast(extract("epoch", column), Float) / 86400.0
    return cast(func.julianday(column), Float) - 2440587.5


def replenishment_events(session: Session, now: datetime, settings: CareSettings) -> list[DueEvent]:
    """Remind customers, a few days ahead, that a consumable they buy again and again is running out.

    Computed in SQL per (customer, product) of the consumable categories, over counted orders of
    the last two years: the pace, the run-out day and whether today falls in the reminder window.
    Only the due pairs reach Python. The purchase lines (a join of millions of orders and items at
    1M customers) are read once: window aggregates over each pair give its first and last day,
    units and days, where a join of the lines with themselves read them twice (35–39 s,
    bench/care_scale.py).
    """
    categories = list(settings.care_consumable_categories)
    if not categories:
        return []
    today = _today(now)
    dialect = session.get_bind().dialect.name
    lead = settings.care_replenishment_lead_days
    counted = counted_order_condition(today)
    lines = (
        select(
            Order.customer_id.label("customer_id"),
            OrderItem.product_id.label("product_id"),
            Order.order_date.label("day"),
            func.sum(OrderItem.quantity).label("quantity"),
        )
        .join(OrderItem, OrderItem.order_id == Order.order_id)
        .join(Product, Product.product_id == OrderItem.product_id)
        .where(counted, Product.category.in_(categories), Order.order_date >= today - timedelta(days=730))
        .group_by(Order.customer_id, OrderItem.product_id, Order.order_date)
        .subquery()
    )
    # Each pair's figures over all its days, on every day's row (one window pass, no second read of
    # the lines); the row of the last day carries the last quantity.
    pair = (lines.c.customer_id, lines.c.product_id)
    pairs = select(
        lines.c.customer_id,
        lines.c.product_id,
        lines.c.day,
        lines.c.quantity,
        func.min(lines.c.day).over(partition_by=pair).label("first_day"),
        func.max(lines.c.day).over(partition_by=pair).label("last_day"),
        func.sum(lines.c.quantity).over(partition_by=pair).label("total"),
        func.count().over(partition_by=pair).label("days"),
    ).subquery()
    first_number = _day_number(pairs.c.first_day, dialect)
    last_number = _day_number(pairs.c.last_day, dialect)
    before_last = cast(pairs.c.total - pairs.c.quantity, Float)
    runout = last_number + cast(pairs.c.quantity, Float) * (last_number - first_number) / before_last
    today_number = float((today - date(1970, 1, 1)).days)
    rows = session.execute(
        select(
            *_CUSTOMER_COLUMNS,
            Product.product_id,
            Product.name,
            pairs.c.last_day,
            pairs.c.quantity,
            runout.label("runout"),
        )
        .select_from(pairs)
        .join(Customer, Customer.customer_id == pairs.c.customer_id)
        .join(Product, Product.product_id == pairs.c.product_id)
        .where(
            pairs.c.day == pairs.c.last_day,
            pairs.c.days >= 2,
            pairs.c.total > pairs.c.quantity,
            runout >= today_number,
            runout - lead <= today_number,
        )
        .order_by(pairs.c.customer_id, pairs.c.product_id)
    ).all()
    events: list[DueEvent] = []
    for row in rows:
        customer = _customer(row)
        extra: Sequence[Any] = row[len(_CUSTOMER_COLUMNS) :]
        product_id, product_name, last_day, quantity, runout_number = extra
        runout_day = date(1970, 1, 1) + timedelta(days=int(float(runout_number)))
        events.append(
            _customer_event(
                CARE_RULE_REPLENISHMENT,
                f"{customer.customer_id}+{product_id}",
                runout_day.isoformat(),
                customer,
                "replenishment.customer",
                {
                    "product_name": product_name,
                    "quantity": int(quantity),
                    "last_order": cn_date(last_day, today=today),
                    "runout": cn_date(runout_day, today=today),
                },
            )
        )
    return events


RULES: Final = (
    (CARE_RULE_BIRTHDAY, birthday_events),
    (CARE_RULE_LAPSE, lapse_events),
    (CARE_RULE_FOLLOW_UP, follow_up_events),
    (CARE_RULE_SLA, sla_events),
    (CARE_RULE_REPLENISHMENT, replenishment_events),
)
"""Every rule, by name, in the order a run decides them."""
