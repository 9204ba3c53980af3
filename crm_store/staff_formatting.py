"""How the staff side's answers are written, in Chinese: the values that fill the bot's staff responses.

The sentences are responses of the bot's domain (bot/domain/staff.yml); these functions write the
values that go into them: a customer as a choice shows them, the 360 view one line per section,
the open opportunities, the reminders, a visit draft. The staff-side counterpart of
`crm_store.formatting`, whose dates (`cn_date`) and "无" (`or_not_set`) they reuse.
"""

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Final

from crm_store.customer360 import CustomerMatch, CustomerView
from crm_store.formatting import NOT_SET, cn_date, cn_time, or_not_set
from crm_store.lapse import LapsedCustomer
from crm_store.opportunities import OpportunityView
from crm_store.outbox import InboxMessage
from crm_store.reminders import BirthdayReminder
from crm_store.vocab import INTERACTION_KINDS

__all__ = [
    "FIELD_NAMES",
    "UNKNOWN_KIND",
    "birthday_lines",
    "candidate_title",
    "churn_percent",
    "customer_360_fields",
    "customer_label",
    "field_name",
    "lapsed_lines",
    "money",
    "opportunity_lines",
    "rfm_label",
    "task_customer",
    "visit_fields",
]

FIELD_NAMES: Final = {
    "phone": "手机号",
    "email": "邮箱",
    "city": "城市",
    "birthday": "生日",
    "notes": "备注",
    "preferences": "偏好",
}
"""How each updatable customer field is called in a confirmation."""

UNKNOWN_KIND: Final = INTERACTION_KINDS[-1]
"""The kind saved when a visit note names no way of contact (其他)."""

_ANY_CONTACT: Final = "沟通"
_NO_COMPANY: Final = "个人客户"
_NO_CUSTOMER: Final = "（无客户）"
_AMOUNT_NOT_SET: Final = "未定"
_LIST_SEPARATOR: Final = "；"
_NOT_SCORED: Final = "待评分"


def field_name(field: str) -> str:
    return FIELD_NAMES.get(field, field)


def customer_label(match: CustomerMatch) -> str:
    """A customer as a choice shows them: 王芳（华峰科技有限公司，172****3406）."""
    where = match.company or match.city
    return (
        f"{match.name}（{where}，{match.masked_phone}）" if where else f"{match.name}（{match.masked_phone}）"
    )


def candidate_title(name: str, company: str | None) -> str:
    """A visit's candidate customer as a button shows them: 王芳（华峰科技有限公司）."""
    return f"{name}（{company}）" if company else name


def money(value: Any) -> str:
    """An amount in whole yuan with thousands separators (98,000), or 未定."""
    return f"{Decimal(str(value)):,.0f}" if value not in (None, "") else _AMOUNT_NOT_SET


def rfm_label(view: CustomerView) -> str:
    """RFM scores as R5 F3 M4 (5 the best), or 待评分 before the customer's first refresh."""
    if view.r_score is None or view.f_score is None or view.m_score is None:
        return _NOT_SCORED
    return f"R{view.r_score} F{view.f_score} M{view.m_score}"


def churn_percent(risk: float) -> str:
    """Churn risk as a whole percent: 0.034 → 3%."""
    return f"{round(risk * 100)}%"


def customer_360_fields(view: CustomerView, *, today: date) -> dict[str, Any]:
    """The values of `utter_customer_360`: one short line per section, 无 where there is nothing."""
    contact = view.last_contact
    orders = _LIST_SEPARATOR.join(
        f"{o.order_date:%m-%d} {o.amount:,.0f}元 {o.status}" for o in view.recent_orders
    )
    tickets = _LIST_SEPARATOR.join(f"{t.ticket_id} {t.summary}（{t.status}）" for t in view.open_tickets)
    deals = _LIST_SEPARATOR.join(f"{o.name} {o.stage} {o.amount:,.0f}元" for o in view.open_opportunities)
    next_step = or_not_set(contact.next_step if contact else None)
    if contact is not None and contact.next_date is not None:
        next_step += f"（{cn_date(contact.next_date, today=today)}）"
    return {
        "name": view.name,
        "company": view.company or view.city or _NO_COMPANY,
        "tier": view.value_tier,
        "status": view.lifecycle,
        "rfm": rfm_label(view),
        "clv": money(view.clv),
        "churn_risk": churn_percent(view.churn_risk),
        "phone": or_not_set(view.phone),
        "owner": or_not_set(view.owner_name),
        "total_spend": money(view.total_spend),
        "order_count": view.order_count,
        "recent_orders": or_not_set(orders),
        "open_tickets": or_not_set(tickets),
        "last_contact": f"{cn_date(contact.occurred_at, today=today)} {contact.kind}：{contact.summary}"
        if contact
        else NOT_SET,
        "next_step": next_step,
        "opportunities": or_not_set(deals),
        "preferences": or_not_set("、".join(view.preferences)),
        "notes": or_not_set(view.notes),
        "next_birthday": cn_date(view.next_birthday, today=today) if view.next_birthday else NOT_SET,
    }


def opportunity_lines(items: Iterable[OpportunityView]) -> str:
    """ "我的商机": one line per opportunity with its stage, probability, amount and weighted amount."""
    return "\n".join(
        f"• {v.opportunity_id} {v.name}（{v.customer_name}）｜{v.stage} {v.probability}%｜"
        f"{money(v.amount)} 元，加权 {money(v.weighted_amount)} 元"
        for v in items
    )


def task_customer(name: str | None) -> str:
    """The customer of a follow-up, or a mark for a task about no customer."""
    return name or _NO_CUSTOMER


def birthday_lines(birthdays: Iterable[BirthdayReminder], *, today: date) -> str:
    return "\n".join(f"• {b.name}：{cn_date(b.birthday, today=today)}" for b in birthdays)


def lapsed_lines(lapsed: Iterable[LapsedCustomer]) -> str:
    return "\n".join(
        f"• {c.name}：{c.days_since_last_order} 天没下单（上次 {c.last_order_date:%Y-%m-%d}）" for c in lapsed
    )


def notice_lines(notices: Iterable[InboxMessage]) -> str:
    """Care notices as given (newest first), each with when it came; the text is care's own sentence."""
    return "\n".join(f"• {cn_time(n.sent_at)}：{n.text}" if n.sent_at else f"• {n.text}" for n in notices)


def visit_fields(extraction: Mapping[str, Any], customer: str | None, *, today: date) -> dict[str, Any]:
    """The values of a visit's confirmation card and saved message, from the draft's JSON (ISO dates)."""
    occurred = date.fromisoformat(str(extraction["occurred_at"]))
    next_date = extraction.get("next_date")
    return {
        "customer": customer or extraction.get("customer_id"),
        "kind": extraction.get("kind") or _ANY_CONTACT,
        "occurred_at": cn_date(occurred, today=today),
        "summary": extraction.get("summary"),
        "next_step": extraction.get("next_step") or NOT_SET,
        "next_date": cn_date(date.fromisoformat(str(next_date)), today=today) if next_date else NOT_SET,
    }
