"""Customer 360: find a customer as staff say it, and the whole picture of one in a single answer.

**Finding** (`find_customers`) understands, within the actor's scope (`crm_store.access`):

- an id (C0003, c3 is not an id), an 11-digit mobile number in any typed form, or its last four
  digits ("尾号4104", "4104");
- a name (王芳), a lone surname (王), a surname with a title (王总, 孔总监, 王经理, 王姐, 老王:
  customers whose name starts with the surname; business titles such as 总/总监/经理 put 企业
  customers' contacts first);
- a company or a short company name: the legal suffix (股份有限公司, 有限责任公司, 有限公司, 集团,
  公司) and then a trade word (科技, 物流 …, `TRADE_WORDS`) may be left out, so 华峰科技 and 华峰
  find 华峰科技有限公司, 远航物流 finds 远航物流股份有限公司;
- a company and a person together: "华峰科技的王芳", "华峰王总".

Matches are ranked (`MATCH_SCORES`: id, phone, full name, company + person, title, company,
surname, phone tail) and at most `limit` (5) are returned. A match shows the phone masked.

**The 360 view** (`customer_view`) of one customer in scope: profile, phone and e-mail, value tier,
RFM scores, CLV and churn risk, lifecycle status, total spend and count of counted orders, the last
three orders, open tickets, the last contact and its next step, open opportunities with their
weighted amounts, preferences and notes, and the next birthday.

- **Phone and e-mail** are shown in full only to the customer's owner (`customers.owner_id`), the
  person who calls them. Everyone else in scope, managers and admins included, sees them masked
  (182****4104, c0***@example.com): the view is read on phones, in cars and in meetings, and the
  number stays one step away for whoever has a reason (the owner, or the record itself).
- **Value and risk** (tier 关键/普通/小客户 by cumulative revenue share, RFM 1–5, CLV, churn risk
  0–1: one rule, one home, `crm_store.analytics.customer_value`, docs/analytics.md) are read from
  the customer's row of `customer_scores`, the snapshot of the last refresh (nightly, or
  `crmbot analytics refresh`), whose day the view gives (`scores_as_of`). A customer without a row
  yet (new since the last refresh) has them computed now by the same rules, except the RFM scores,
  which rank every customer and stay empty until the next refresh.
- **Lifecycle status** (`LIFECYCLE_*`, `crm_store.analytics.customer_value.lifecycle_status`), live,
  on counted orders (not unpaid, cancelled or refunded), in this order: 潜在 no counted order;
  已流失 none in the last 365 days; 流失预警 lapsed by the one lapse rule (`crm_store.lapse`); 忠实
  at least 5 in the last 365 days; 回头客 2 or more in all; 新客 one.
- **Last contact** is the latest interaction (date, kind, summary, employee); the next step and
  next date are that interaction's.
- **Next birthday**: 29 February is kept on 28 February in other years (`crm_store.reminders.next_birthday`).

The view costs a fixed handful of indexed queries, whatever the size of the store: the customer
with its owner; one SQL aggregate and the purchase dates of this customer's counted orders
(`orders.customer_id`); their row of `customer_scores`; the last three orders with their items;
open tickets (`tickets.customer_id`); the latest interaction (`interactions.customer_id`); open
opportunities (`opportunities.customer_id`). Nothing ranks every customer during a request: the
scores are computed by the refresh. Two figures still read every order, and only when needed: the
lapse rule's population gap for a customer with a single purchase day (cached per database and day,
`crm_store.lapse.POPULATION_GAP_TTL_S`), and the window's revenue for the tier of a customer not
scored yet.

Every view is audited (`view_customer`, the sections read as fields). A customer-side actor gets
`Forbidden("staff_only")`; a customer outside the scope is `NotFound`, exactly like a missing id.
"""

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session, aliased

from crm_store.access import Actor, customer_scope, require_staff
from crm_store.analytics.customer_value import (
    LOST_AFTER_DAYS,
    ScoreRow,
    lifecycle_status,
    unscored_customer,
)
from crm_store.audit import audit
from crm_store.customers import recent_orders
from crm_store.errors import NotFound
from crm_store.lapse import MIN_LAPSE_DAYS, counted_order_condition, lapse_status, population_median_gap
from crm_store.models import Customer, CustomerScore, Employee, Interaction, Opportunity, Order, Ticket
from crm_store.opportunities import OPEN_STAGES, STAGE_PROBABILITY, weighted_amount
from crm_store.privacy import mask_phone, normalise_phone
from crm_store.reminders import next_birthday
from crm_store.vocab import CUSTOMER_TYPE_COMPANY, TICKET_OPEN_STATUSES

__all__ = [
    "CustomerMatch",
    "CustomerView",
    "company_short_names",
    "customer_view",
    "find_customers",
    "mask_email",
]

# --------------------------------------------------------------------------------------------------
# Finding customers.

LEGAL_SUFFIXES: Final = (
    "集团股份有限公司",
    "集团有限公司",
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "集团",
    "公司",
)
"""Left out of a company's short name, longest first."""

TRADE_WORDS: Final = (
    "农业科技", "信息技术", "机械制造", "医疗器械", "科技", "物流", "贸易", "软件", "教育", "家居", "机械",
    "制造", "医疗", "农业", "电子", "网络", "实业", "传媒", "咨询", "食品", "建设", "工程", "投资", "文化",
    "商贸", "餐饮", "酒店", "地产", "置业", "能源", "环保", "生物", "汽车", "服饰", "设计", "装饰",
)  # fmt: skip
"""Trade words a short company name may leave out after the legal suffix: 华峰科技 → 华峰."""

BUSINESS_TITLES: Final = ("总经理", "董事长", "总监", "经理", "主任", "老板", "主管", "总", "董")
"""Titles of a company contact: 企业 customers come first for these."""

PERSONAL_TITLES: Final = ("老师", "先生", "女士", "小姐", "师傅", "阿姨", "大哥", "姐", "哥", "工")
"""Other forms of address after a surname (王姐, 李先生)."""

MATCH_SCORES: Final = {
    "id": 100,
    "phone": 95,
    "name": 90,
    "company_person": 85,
    "title": 70,
    "company": 60,
    "surname": 40,
    "phone_tail": 30,
}
"""How a match ranks, by how it matched; ties go by customer id."""

MATCH_LIMIT: Final = 5
_CANDIDATES_PER_WAY: Final = 50
_CUSTOMER_ID: Final = re.compile(r"C[0-9]{1,12}")
_PHONE_TAIL: Final = re.compile(r"(?:尾号|手机尾号|电话尾号)?([0-9]{4})")
_FILLERS: Final = re.compile(
    r"^(?:帮我|麻烦)?(?:查一下|查查|查询|查|看一下|看看|找一下|找找|找|打开)?(?:客户)?|"
    r"(?:这个|那个)?(?:客户)?(?:的)?(?:档案|资料|信息|情况|详情|360)?$"
)
_TITLES: Final = tuple(sorted(BUSINESS_TITLES + PERSONAL_TITLES, key=len, reverse=True))


def company_short_names(company: str) -> list[str]:
    """The shorter names a company goes by: 华峰科技有限公司 → [华峰科技, 华峰].

    Each keeps at least two characters; the full name itself is not in the list.
    """
    names: list[str] = []
    core = company.strip()
    for suffix in LEGAL_SUFFIXES:
        if core.endswith(suffix) and len(core) - len(suffix) >= 2:
            core = core[: -len(suffix)]
            names.append(core)
            break
    for word in TRADE_WORDS:
        if core.endswith(word) and len(core) - len(word) >= 2:
            names.append(core[: -len(word)])
            break
    return [name for name in names if name != company]


def _company_core(text: str) -> str:
    """A company as typed without its legal suffix, so that 远航物流公司 searches 远航物流."""
    for suffix in LEGAL_SUFFIXES:
        if text.endswith(suffix) and len(text) - len(suffix) >= 2:
            return text[: -len(suffix)]
    return text


def _surname_and_title(text: str) -> tuple[str, str] | None:
    """(surname, title) of 王总, 欧阳经理, 老王, 小王; None for anything else."""
    if len(text) == 2 and text[0] in "老小":
        return text[1], ""
    for title in _TITLES:
        if text.endswith(title):
            surname = text[: -len(title)]
            if 1 <= len(surname) <= 2:
                return surname, title
    return None


@dataclass(frozen=True)
class CustomerMatch:
    """A customer found for a query, as a list to choose from shows it (phone masked)."""

    customer_id: str
    name: str
    type: str
    company: str | None
    city: str | None
    masked_phone: str
    owner_id: str | None
    matched_by: str
    score: int

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "type": self.type,
            "company": self.company,
            "city": self.city,
            "phone": self.masked_phone,
            "owner_id": self.owner_id,
            "matched_by": self.matched_by,
        }


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _clean_query(query: str) -> str:
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", query))
    previous = None
    while previous != text:
        previous = text
        text = _FILLERS.sub("", text)
    return text


class _Finder:
    """Collects the matches of one query, keeping each customer's best way."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session = session
        self.scope = customer_scope(actor)
        self.found: dict[str, CustomerMatch] = {}

    def add(self, condition: ColumnElement[bool], way: str, *, companies_first: bool = False) -> int:
        rows = self.session.execute(
            select(
                Customer.customer_id,
                Customer.name,
                Customer.type,
                Customer.company,
                Customer.city,
                Customer.phone,
                Customer.owner_id,
            )
            .where(condition, self.scope)
            .order_by(Customer.customer_id)
            .limit(_CANDIDATES_PER_WAY)
        ).all()
        for customer_id, name, kind, company, city, phone, owner_id in rows:
            score = MATCH_SCORES[way]
            if companies_first and kind == CUSTOMER_TYPE_COMPANY:
                score += 5
            known = self.found.get(customer_id)
            if known is None or known.score < score:
                self.found[customer_id] = CustomerMatch(
                    customer_id, name, kind, company, city, mask_phone(phone), owner_id, way, score
                )
        return len(rows)

    def person(self, text: str) -> ColumnElement[bool] | None:
        """The condition for a person as named: a full name, or a surname with a title."""
        title = _surname_and_title(text)
        if title is not None:
            return Customer.name.like(f"{_like(title[0])}%", escape="\\")
        if 2 <= len(text) <= 4:
            return Customer.name == text
        return None

    def company(self, text: str) -> ColumnElement[bool] | None:
        core = _company_core(text)
        if len(core) < 2:
            return None
        return Customer.company.like(f"%{_like(core)}%", escape="\\")


def find_customers(
    session: Session, actor: Actor, query: str, *, limit: int = MATCH_LIMIT
) -> list[CustomerMatch]:
    """The customers in the actor's scope that `query` names, best first (module docstring).

    Raises:
        Forbidden: The actor is not staff ("staff_only").
    """
    require_staff(actor)
    text = _clean_query(query)
    if not text or len(text) > 64:
        return []
    finder = _Finder(session, actor)

    if _CUSTOMER_ID.fullmatch(text.upper()):
        finder.add(Customer.customer_id == text.upper(), "id")
    phone = normalise_phone(text)
    if phone is not None:
        finder.add(Customer.phone == phone, "phone")
    elif (tail := _PHONE_TAIL.fullmatch(text)) is not None:
        finder.add(Customer.phone.like(f"%{tail[1]}"), "phone_tail")
    if finder.found or text.isdigit():
        return _ranked(finder.found.values(), limit)

    if 2 <= len(text) <= 4:
        finder.add(Customer.name == text, "name")
    title = _surname_and_title(text)
    if title is not None:
        surname, word = title
        finder.add(
            Customer.name.like(f"{_like(surname)}%", escape="\\"),
            "title",
            companies_first=word in BUSINESS_TITLES,
        )
    company = finder.company(text)
    if company is not None:
        finder.add(company, "company")
    if len(text) == 1:
        # A lone surname ("王") lists its bearers; an unknown full name ("王芳" outside the scope)
        # finds nothing rather than other people of the same surname.
        finder.add(Customer.name.like(f"{_like(text[0])}%", escape="\\"), "surname")

    if not finder.found and len(text) >= 4:
        # A company and a person together: "华峰科技的王芳", "华峰王总".
        for company_part, person_part in _splits(text):
            person = finder.person(person_part)
            company = finder.company(company_part)
            if person is not None and company is not None:
                finder.add(person & company, "company_person")
    return _ranked(finder.found.values(), limit)


def _splits(text: str) -> list[tuple[str, str]]:
    if "的" in text:
        left, _, right = text.rpartition("的")
        return [(left, right)]
    # The person is the last two to four characters: 王总, 王芳, 欧阳经理.
    return [(text[:-size], text[-size:]) for size in (2, 3, 4) if len(text) - size >= 2]


def _ranked(matches: Iterable[CustomerMatch], limit: int) -> list[CustomerMatch]:
    return sorted(matches, key=lambda m: (-m.score, m.customer_id))[: max(limit, 0)]


# --------------------------------------------------------------------------------------------------
# The 360 view.

RECENT_ORDERS_SHOWN: Final = 3

VIEW_SECTIONS: Final = (
    "profile",
    "phone",
    "email",
    "value_tier",
    "value_scores",
    "lifecycle",
    "orders",
    "tickets",
    "last_contact",
    "opportunities",
    "preferences",
    "notes",
    "birthday",
)
"""What a 360 view reads, as its audit row names it."""


def mask_email(email: str | None) -> str | None:
    """ "c0***@example.com": the first two characters of the mailbox and the domain."""
    if not email:
        return None
    local, at, domain = email.partition("@")
    if not at:
        return "***"
    return f"{local[:2]}***@{domain}"


@dataclass(frozen=True)
class OrderLine:
    order_id: str
    order_date: date
    status: str
    amount: Decimal
    items: tuple[str, ...]


@dataclass(frozen=True)
class TicketLine:
    ticket_id: str
    category: str | None
    priority: str
    status: str
    opened_at: date
    summary: str


@dataclass(frozen=True)
class LastContact:
    interaction_id: str
    occurred_at: date
    kind: str
    summary: str
    employee_id: str
    employee_name: str
    next_step: str | None
    next_date: date | None


@dataclass(frozen=True)
class OpportunityLine:
    opportunity_id: str
    name: str
    stage: str
    amount: Decimal
    probability: int
    weighted_amount: Decimal
    expected_close: date | None
    owner_id: str


@dataclass(frozen=True)
class CustomerView:
    """Everything staff need before meeting a customer, in one answer (module docstring).

    `phone` and `email` are masked unless `contact_unmasked` (the asker owns the customer).
    """

    customer_id: str
    name: str
    type: str
    company: str | None
    gender: str | None
    city: str | None
    region: str | None
    owner_id: str | None
    owner_name: str | None
    channel_pref: str | None
    opt_out: bool
    phone: str | None
    email: str | None
    contact_unmasked: bool
    value_tier: str
    lifecycle: str
    total_spend: Decimal
    order_count: int
    last_order_date: date | None
    days_since_last_order: int | None
    lapse_threshold_days: int | None
    recent_orders: tuple[OrderLine, ...]
    open_tickets: tuple[TicketLine, ...]
    last_contact: LastContact | None
    open_opportunities: tuple[OpportunityLine, ...]
    preferences: tuple[str, ...]
    notes: str | None
    next_birthday: date | None
    days_to_birthday: int | None
    weighted_pipeline: Decimal = field(default=Decimal(0))
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    clv: Decimal = field(default=Decimal(0))
    churn_risk: float = 0.0
    scores_as_of: date | None = None
    """The day of the refresh the tier, RFM, CLV and churn risk come from; None: computed now."""

    @property
    def url(self) -> str:
        """The staff page of the customer."""
        return f"/customers/{self.customer_id}"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: amounts as numbers, dates ISO, missing values null."""

        def day(value: date | None) -> str | None:
            return value.isoformat() if value is not None else None

        contact = self.last_contact
        return {
            "customer_id": self.customer_id,
            "url": self.url,
            "profile": {
                "name": self.name,
                "type": self.type,
                "company": self.company,
                "gender": self.gender,
                "city": self.city,
                "region": self.region,
                "owner_id": self.owner_id,
                "owner_name": self.owner_name,
                "channel_pref": self.channel_pref,
                "opt_out": self.opt_out,
                "phone": self.phone,
                "email": self.email,
                "contact_masked": not self.contact_unmasked,
            },
            "value_tier": self.value_tier,
            "lifecycle": self.lifecycle,
            "rfm": {"recency": self.r_score, "frequency": self.f_score, "monetary": self.m_score},
            "clv": float(self.clv),
            "churn_risk": round(self.churn_risk, 4),
            "scores_as_of": day(self.scores_as_of),
            "total_spend": float(self.total_spend),
            "order_count": self.order_count,
            "last_order_date": day(self.last_order_date),
            "days_since_last_order": self.days_since_last_order,
            "lapse_threshold_days": self.lapse_threshold_days,
            "recent_orders": [
                {
                    "order_id": o.order_id,
                    "order_date": o.order_date.isoformat(),
                    "status": o.status,
                    "amount": float(o.amount),
                    "items": list(o.items),
                }
                for o in self.recent_orders
            ],
            "open_tickets": [
                {
                    "ticket_id": t.ticket_id,
                    "category": t.category,
                    "priority": t.priority,
                    "status": t.status,
                    "opened_at": t.opened_at.isoformat(),
                    "summary": t.summary,
                }
                for t in self.open_tickets
            ],
            "last_contact": None
            if contact is None
            else {
                "interaction_id": contact.interaction_id,
                "occurred_at": contact.occurred_at.isoformat(),
                "kind": contact.kind,
                "summary": contact.summary,
                "employee_id": contact.employee_id,
                "employee_name": contact.employee_name,
            },
            "next_step": contact.next_step if contact else None,
            "next_date": day(contact.next_date) if contact else None,
            "open_opportunities": [
                {
                    "opportunity_id": o.opportunity_id,
                    "name": o.name,
                    "stage": o.stage,
                    "amount": float(o.amount),
                    "probability": o.probability,
                    "weighted_amount": float(o.weighted_amount),
                    "expected_close": day(o.expected_close),
                    "owner_id": o.owner_id,
                }
                for o in self.open_opportunities
            ],
            "weighted_pipeline": float(self.weighted_pipeline),
            "preferences": list(self.preferences),
            "notes": self.notes,
            "next_birthday": day(self.next_birthday),
            "days_to_birthday": self.days_to_birthday,
        }


def _scores(session: Session, customer_id: str, *, today: date) -> tuple[ScoreRow, date | None]:
    """The customer's row of the last refresh (up to `today`), or their figures computed now."""
    row = session.get(CustomerScore, customer_id)
    if row is None or row.computed_on > today:
        return unscored_customer(session, customer_id=customer_id, today=today), None
    scored = ScoreRow(
        customer_id=row.customer_id,
        recency_days=row.recency_days,
        frequency=row.frequency,
        monetary=row.monetary,
        r_score=row.r_score,
        f_score=row.f_score,
        m_score=row.m_score,
        value_tier=row.value_tier,
        lifecycle=row.lifecycle,
        clv=row.clv,
        churn_risk=row.churn_risk,
    )
    return scored, row.computed_on


def preference_items(preferences: str | None) -> tuple[str, ...]:
    """The stored preferences (one item per line) as a tuple, blanks dropped."""
    return tuple(line.strip() for line in (preferences or "").splitlines() if line.strip())


def customer_view(session: Session, actor: Actor, customer_id: str, *, today: date) -> CustomerView:
    """The 360 view of a customer in the actor's scope, audited as `view_customer`.

    Raises:
        Forbidden: The actor is not staff ("staff_only").
        NotFound: No such customer, or one outside the actor's scope ("customer_not_found").
    """
    require_staff(actor)
    owner = aliased(Employee)
    found = session.execute(
        select(Customer, owner.name)
        .outerjoin(owner, owner.employee_id == Customer.owner_id)
        .where(Customer.customer_id == customer_id, customer_scope(actor))
    ).first()
    if found is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    customer, owner_name = found
    unmasked = actor.employee_id is not None and customer.owner_id == actor.employee_id

    # One aggregate of this customer's counted orders: all of them and the last year's.
    counted = counted_order_condition(today)
    year_ago = date.fromordinal(today.toordinal() - LOST_AFTER_DAYS)
    order_count, total, last_year = session.execute(
        select(
            func.count(), func.sum(Order.amount), func.count(case((Order.order_date > year_ago, 1)))
        ).where(Order.customer_id == customer.customer_id, counted)
    ).one()
    purchase_days = list(
        session.scalars(
            select(Order.order_date).where(Order.customer_id == customer.customer_id, counted).distinct()
        )
    )
    population = (
        population_median_gap(session, today=today)
        if len(purchase_days) == 1 and (today - purchase_days[0]).days > MIN_LAPSE_DAYS
        else None
    )
    lapse = lapse_status(purchase_days, today=today, population_gap=population)
    lifecycle = lifecycle_status(
        counted_orders=int(order_count or 0),
        orders_last_year=int(last_year or 0),
        last_order=lapse.last_order_date,
        lapsed=lapse.lapsed,
        today=today,
    )
    scores, scores_as_of = _scores(session, customer.customer_id, today=today)

    orders = tuple(
        OrderLine(o.order_id, o.order_date, o.status, o.amount, o.product_names)
        for o in recent_orders(session, customer_id=customer.customer_id, limit=RECENT_ORDERS_SHOWN)
    )
    tickets = tuple(
        TicketLine(t.ticket_id, t.category, t.priority, t.status, t.opened_at, t.summary)
        for t in session.scalars(
            select(Ticket)
            .where(
                Ticket.customer_id == customer.customer_id, Ticket.status.in_(sorted(TICKET_OPEN_STATUSES))
            )
            .order_by(Ticket.opened_at.desc(), Ticket.ticket_id.desc())
        )
    )
    latest = session.execute(
        select(Interaction, Employee.name)
        .join(Employee, Employee.employee_id == Interaction.employee_id)
        .where(Interaction.customer_id == customer.customer_id)
        .order_by(Interaction.occurred_at.desc(), Interaction.interaction_id.desc())
        .limit(1)
    ).first()
    last_contact = None
    if latest is not None:
        interaction, employee_name = latest
        last_contact = LastContact(
            interaction.interaction_id,
            interaction.occurred_at,
            interaction.kind,
            interaction.summary,
            interaction.employee_id,
            employee_name,
            interaction.next_step,
            interaction.next_date,
        )
    opportunities = tuple(
        OpportunityLine(
            o.opportunity_id,
            o.name,
            o.stage,
            o.amount,
            STAGE_PROBABILITY.get(o.stage, 0),
            weighted_amount(o.amount, o.stage),
            o.expected_close,
            o.owner_id,
        )
        for o in session.scalars(
            select(Opportunity)
            .where(Opportunity.customer_id == customer.customer_id, Opportunity.stage.in_(OPEN_STAGES))
            .order_by(Opportunity.opportunity_id)
        )
    )
    birthday = next_birthday(customer.birthday, today) if customer.birthday else None

    view = CustomerView(
        customer_id=customer.customer_id,
        name=customer.name,
        type=customer.type,
        company=customer.company,
        gender=customer.gender,
        city=customer.city,
        region=customer.region,
        owner_id=customer.owner_id,
        owner_name=owner_name,
        channel_pref=customer.channel_pref,
        opt_out=customer.opt_out,
        phone=customer.phone if unmasked else (mask_phone(customer.phone) if customer.phone else None),
        email=customer.email if unmasked else mask_email(customer.email),
        contact_unmasked=unmasked,
        value_tier=scores.value_tier,
        lifecycle=lifecycle,
        total_spend=Decimal(total or 0).quantize(Decimal("0.01")),
        order_count=int(order_count or 0),
        last_order_date=lapse.last_order_date,
        days_since_last_order=lapse.days_since_last_order,
        lapse_threshold_days=lapse.threshold_days,
        recent_orders=orders,
        open_tickets=tickets,
        last_contact=last_contact,
        open_opportunities=opportunities,
        preferences=preference_items(customer.preferences),
        notes=customer.notes,
        next_birthday=birthday,
        days_to_birthday=(birthday - today).days if birthday else None,
        weighted_pipeline=sum((o.weighted_amount for o in opportunities), Decimal(0)),
        r_score=scores.r_score,
        f_score=scores.f_score,
        m_score=scores.m_score,
        clv=scores.clv,
        churn_risk=scores.churn_risk,
        scores_as_of=scores_as_of,
    )
    audit(
        session,
        actor,
        "view_customer",
        entity="customer",
        entity_id=customer.customer_id,
        fields=list(VIEW_SECTIONS),
        contact_unmasked=unmasked,
    )
    session.flush()
    return view
