"""Complaints: category, priority, SLA deadline, assignee, the ticket itself, its status and rating.

The rules are the standard complaint procedure of docs/requirements.md §4 (record, categorise, assign,
deadline, escalate). Their defaults are the constants below, each documented; the product owner may
change them. Everything a customer is shown names a role ("华东区客服专员"), never an employee.
"""

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.customers import customer_value_tier, registered_phone
from crm_store.errors import Invalid, NotFound, Unavailable
from crm_store.ids import add_with_new_id
from crm_store.models import AuditLog, Customer, Employee, Interaction, Order, Outbox, Ticket
from crm_store.orders import parse_order_id
from crm_store.privacy import normalise_phone
from crm_store.service_hours import next_service_time
from crm_store.vocab import (
    COMPLAINT_CATEGORIES,
    COMPLAINT_CATEGORY_OTHER,
    CONTACT_CHANNELS,
    INTERACTION_KIND_MESSAGE,
    OUTBOX_KIND_TICKET_NOTICE,
    RATING_MAX,
    RATING_MIN,
    ROLE_LABELS,
    TICKET_OPEN_STATUSES,
    TICKET_PRIORITIES,
    TICKET_STATUS_NEW,
    VALUE_TIER_KEY,
)

CATEGORY_KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    "物流配送": (
        "快递员", "快递", "物流", "没收到", "未收到", "没到货", "还没到", "没送到", "不送货", "送达",
        "延误", "延迟", "配送", "发货", "派送", "送货", "签收", "丢件", "寄错", "发错", "少发", "漏发",
        "运输", "到货", "单号", "送错", "包裹", "催单", "派件", "揽收", "驿站", "放门口", "代签", "没见着",
    ),
    "产品质量": (
        "坏了", "坏掉", "质量", "破损", "碎了", "异响", "噪音", "不能用", "用不了", "没法用", "故障",
        "裂了", "裂缝", "漏水", "漏电", "不工作", "开不了机", "不开机", "没声音", "没有声音", "没反应",
        "失灵", "瑕疵", "划痕", "变形", "发霉", "过期", "变质", "异味", "断了", "掉漆", "起火", "冒烟",
        "爆炸", "发烫", "假货", "次品", "有问题", "不充电", "充不进", "死机", "卡顿", "生锈", "有虫",
        "使用痕迹", "二手",
    ),
    "服务态度": (
        "态度", "客服", "不理人", "没人理", "不理我", "不回复", "不回消息", "不回我", "敷衍", "推诿",
        "踢皮球", "推卸", "骂人", "骂我", "不耐烦", "没人接", "无人接听", "挂电话", "挂我电话",
        "不专业", "服务差", "服务太差", "爱答不理", "没礼貌", "不礼貌", "傲慢", "答非所问", "打不通",
        "破服务",
    ),
    "价格争议": (
        "价格", "降价", "多收", "退差价", "补差价", "差价", "太贵", "贵了", "乱收费", "扣款", "多扣",
        "价保", "保价", "优惠券", "优惠", "满减", "发票", "收费", "重复扣", "价钱", "涨价", "原价",
        "标价", "运费", "多付", "付了两次", "少退", "退款金额", "退款",
    ),
    "售后维修": (
        "维修", "保修", "上门修", "修理", "修好", "修不好", "返修", "售后", "换新", "换货", "退换",
        "检修", "报修", "上门安装", "安装", "师傅", "维修点", "保养", "配件", "修一下", "能修",
        "拿去修", "三包",
    ),
}  # fmt: skip
"""Keyword rules of `infer_category`: the category with the most keyword hits in the text wins.

Keywords are matched longest first and without overlap, so "快递员" counts once, not also as "快递".
"""

CATEGORY_TIE_ORDER: Final = ("售后维修", "价格争议", "服务态度", "产品质量", "物流配送")
"""Which category wins a tie of hits. The more specific request first: someone asking for a repair
names the defect too, someone disputing a price names the product, someone complaining about staff
says what they had asked about. A text with no hit is 其他."""

_PRAISE: Final = re.compile(
    r"(质量|东西|产品|服务|态度|价格|物流|快递|客服)(本身)?(都|也|倒是|还|是)?"
    r"(没问题|没有问题|挺好的?|很好|不错|还行|可以|满意)"
)

SEVERITY_WORDS: Final = (
    "起火", "着火", "冒烟", "冒火", "爆炸", "漏电", "触电", "被电", "受伤", "烫伤", "划伤", "割伤",
    "流血", "住院", "进医院", "过敏", "食物中毒", "中毒", "消协", "消费者协会", "媒体", "曝光", "记者",
    "律师", "起诉", "法院", "告你们", "市场监管", "工商局",
)  # fmt: skip
"""Words of danger to people or of escalation outside the company: any of them makes a complaint 高.

Negations ("没有漏电") are not detected: a false 高 costs a faster answer, a missed one costs more."""

SEVERITY_NUMBERS: Final = ("12315", "315")
"""Consumer hotlines, matched only as whole numbers so that a phone number containing them is not."""

MEDIUM_BASELINE_CATEGORIES: Final = frozenset({"产品质量", "物流配送", "售后维修"})
"""Categories that start at 中: something is wrong with the goods or their delivery. Others start at 低."""

REPEAT_WINDOW_DAYS: Final = 30
"""A complaint is a repeat (one level up) when the customer had another ticket opened in these days."""

SLA_HOURS: Final = {"高": 4, "中": 24, "低": 72}
"""Hours from filing to the resolution deadline, by priority; calendar hours, nights and weekends included."""

SUMMARY_CHARS: Final = 60
"""A ticket's summary is the start of the description, this many characters, with … when cut."""

DESCRIPTION_MAX_CHARS: Final = 2000
"""A longer complaint description is refused rather than silently cut."""

TICKET_ID_PREFIX: Final = "T"
TICKET_ID_DIGITS: Final = 5
INTERACTION_ID_PREFIX: Final = "I"
INTERACTION_ID_DIGITS: Final = 5

# Employee notices go by e-mail: every employee of the fixture has one, and staff read it at work.
STAFF_NOTICE_CHANNEL: Final = "email"
CHANNEL_LABELS: Final = {"web": "网页聊天", "wechat": "微信", "sms": "短信", "email": "邮件"}

_TICKET_ID: Final = re.compile(r"T[0-9]{3,12}")
_SEVERITY_NUMBER: Final = re.compile(r"(?<![0-9])(" + "|".join(SEVERITY_NUMBERS) + r")(?![0-9])")
_SPACES: Final = re.compile(r"\s+")
_KEYWORD_CATEGORY: Final = {word: category for category, words in CATEGORY_KEYWORDS.items() for word in words}
_KEYWORDS: Final = re.compile(
    "|".join(re.escape(word) for word in sorted(_KEYWORD_CATEGORY, key=len, reverse=True))
)


def _normalise_text(text: str) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", text)).lower()


def infer_category(text: str) -> str:
    """The complaint category of a free text, by the keyword rules of `CATEGORY_KEYWORDS`.

    Praise such as "质量没问题" is removed first, so it does not count for its category.
    """
    cleaned = _PRAISE.sub("", _normalise_text(text))
    hits = Counter(_KEYWORD_CATEGORY[match.group()] for match in _KEYWORDS.finditer(cleaned))
    if not hits:
        return COMPLAINT_CATEGORY_OTHER
    return max(CATEGORY_TIE_ORDER, key=lambda category: (hits[category], -CATEGORY_TIE_ORDER.index(category)))


def severity_words(text: str) -> list[str]:
    """The severity words and hotline numbers found in `text`, in the order of `SEVERITY_WORDS`."""
    normalised = _normalise_text(text)
    found = [word for word in SEVERITY_WORDS if word in normalised]
    # "食物中毒" already says it; "中毒" inside it would be a second reason for the same words.
    found = [word for word in found if not any(word != other and word in other for other in found)]
    found.extend(dict.fromkeys(_SEVERITY_NUMBER.findall(normalised)))
    return found


def _raise(priority: str) -> str:
    return TICKET_PRIORITIES[min(TICKET_PRIORITIES.index(priority) + 1, len(TICKET_PRIORITIES) - 1)]


def complaint_priority(
    session: Session,
    *,
    customer_id: str | None,
    text: str,
    today: date | None = None,
    category: str | None = None,
) -> tuple[str, list[str]]:
    """低, 中 or 高 for a new complaint, and the reasons, in Chinese.

    Rules, in order: a severity word (`SEVERITY_WORDS`, `SEVERITY_NUMBERS`) makes it 高; otherwise
    it starts at 中 for `MEDIUM_BASELINE_CATEGORIES` and 低 for the others. It goes one level up
    for a repeat complaint (`REPEAT_WINDOW_DAYS`) and one level up for a 关键 customer (20/80 rule,
    `crm_store.customers.customer_value_tier`), never above 高. Every rule that applied is a reason.

    Args:
        session: An open session.
        customer_id: The complaining customer, None when not verified (no repeat or tier rule then).
        text: The description.
        today: The reference day; the CRM clock by default.
        category: The confirmed category; inferred from `text` when None.
    """
    day = today if today is not None else clock.today()
    category = category if category is not None else infer_category(text)
    reasons: list[str] = []
    severe = severity_words(text)
    if severe:
        priority = "高"
        reasons.append(f"含严重情况用语：{'、'.join(severe)}")
    else:
        priority = "中" if category in MEDIUM_BASELINE_CATEGORIES else "低"
        reasons.append(f"{category}类投诉起始为{priority}")
    if customer_id is None:
        return priority, reasons

    since = day - timedelta(days=REPEAT_WINDOW_DAYS)
    recent = session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.customer_id == customer_id, Ticket.opened_at >= since, Ticket.opened_at <= day)
    )
    if recent:
        priority = _raise(priority)
        reasons.append(f"{REPEAT_WINDOW_DAYS} 天内重复投诉，升一级")
    if customer_value_tier(session, customer_id=customer_id, today=day) == VALUE_TIER_KEY:
        priority = _raise(priority)
        reasons.append(f"{VALUE_TIER_KEY}客户，升一级")
    return priority, reasons


def sla_deadline(priority: str, opened_at: datetime) -> datetime:
    """When a ticket of `priority` opened at `opened_at` must be resolved (`SLA_HOURS`), in Beijing time.

    A ticket filed outside `SERVICE_HOURS` starts its clock when service opens: a 4-hour promise
    made at 23:00 cannot fall due at 3:00, before anyone is at work to keep it.

    Raises:
        Invalid: Unknown priority (code "priority_unknown").
        TypeError: `opened_at` is naive: a programming error, not a refusal (see `next_service_time`).
    """
    if priority not in SLA_HOURS:
        raise Invalid("priority_unknown", field="priority")
    starts = next_service_time(opened_at) or opened_at
    return (starts + timedelta(hours=SLA_HOURS[priority])).astimezone(clock.TZ)


def role_label(employee: Employee) -> str:
    """How an employee is shown to customers: "华东区客服专员", never a name."""
    role = ROLE_LABELS.get(employee.role, "工作人员")
    return f"{employee.region}区{role}" if employee.region else role


def _least_recently_assigned(session: Session, *conditions: ColumnElement[bool]) -> Employee | None:
    last_assigned = func.max(Ticket.assigned_at)
    stmt = (
        select(Employee)
        .outerjoin(Ticket, (Ticket.assignee_id == Employee.employee_id) & Ticket.assigned_at.is_not(None))
        .where(*conditions)
        .group_by(Employee.employee_id)
        # Never assigned first (NULLS FIRST is not portable), then the longest waiting; ids break ties.
        .order_by(
            case((last_assigned.is_(None), 0), else_=1),
            last_assigned,
            func.max(Ticket.ticket_id),
            Employee.employee_id,
        )
        .limit(1)
    )
    return session.scalar(stmt)


def pick_assignee(session: Session, *, region: str | None) -> Employee:
    """The employee a new ticket goes to: round robin among the service staff of the region.

    The next one is whoever was assigned a ticket least recently through this function (imported
    tickets do not count), so two agents of a region alternate. Without service staff in the region,
    any service agent; without any, an administrator.

    Raises:
        Unavailable: No service staff and no administrator at all (code "no_assignee").
    """
    pools: list[tuple[ColumnElement[bool], ...]] = []
    if region:
        pools.append((Employee.role == "service", Employee.region == region))
    pools.append((Employee.role == "service",))
    pools.append((Employee.role == "admin",))
    for conditions in pools:
        employee = _least_recently_assigned(session, *conditions)
        if employee is not None:
            return employee
    raise Unavailable("no_assignee", region=region)


@dataclass(frozen=True)
class ComplaintReceipt:
    """What the customer is told after filing: the ticket, its priority, deadline and handler's role."""

    ticket_id: str
    category: str
    priority: str
    priority_reasons: tuple[str, ...]
    deadline: datetime
    assignee_role: str
    status: str
    # False when `request_key` found the ticket of an earlier, identical request.
    created: bool = True


def _summarise(description: str) -> str:
    flat = _SPACES.sub(" ", description).strip()
    return flat if len(flat) <= SUMMARY_CHARS else flat[:SUMMARY_CHARS] + "…"


def _ticket_deadline(ticket: Ticket) -> datetime:
    if ticket.due_at is not None:
        return ticket.due_at.astimezone(clock.TZ)
    # An imported ticket has only a date: count from that day's start (sla_deadline moves it to opening).
    return sla_deadline(ticket.priority, datetime.combine(ticket.opened_at, time(0), tzinfo=clock.TZ))


def _receipt(ticket: Ticket, reasons: tuple[str, ...], *, created: bool) -> ComplaintReceipt:
    return ComplaintReceipt(
        ticket_id=ticket.ticket_id,
        category=ticket.category or COMPLAINT_CATEGORY_OTHER,
        priority=ticket.priority,
        priority_reasons=reasons,
        deadline=_ticket_deadline(ticket),
        assignee_role=role_label(ticket.assignee) if ticket.assignee is not None else "客服",
        status=ticket.status,
        created=created,
    )


def create_complaint(
    session: Session,
    *,
    customer_id: str | None,
    order_id: str | None,
    description: str,
    category: str,
    contact_phone: str,
    channel: str = "web",
    now: datetime | None = None,
    request_key: str | None = None,
) -> ComplaintReceipt:
    """File a complaint: a ticket, an interaction, a notice to the owner, an audit row, in one transaction.

    The ticket gets the next id (T + 5 digits), status 新建, the priority of `complaint_priority`,
    the deadline of `sla_deadline` and the assignee of `pick_assignee`. For a known customer an
    interaction (kind 消息) records the contact; the customer's owner (or, without one, the assignee)
    gets an outbox notice, deduplicated by ticket id. The caller commits.

    Args:
        session: An open session.
        customer_id: The verified customer, or None for someone not verified.
        order_id: The related order as typed, or None; it must be the customer's.
        description: The customer's own words.
        category: The confirmed category, one of `COMPLAINT_CATEGORIES`.
        contact_phone: A mainland mobile number, as typed.
        channel: Where the complaint came in, one of `CONTACT_CHANNELS`.
        now: The filing time; the CRM clock by default.
        request_key: An id of this request (e.g. conversation key + message id): filing again with
            the same key returns the first ticket instead of opening a second one.

    Raises:
        Invalid: A field breaks a rule; `field` names it. Codes: "description_empty",
            "description_too_long" (with `limit`), "category_unknown", "channel_unknown",
            "contact_phone_invalid", "order_id_malformed", "order_of_another_customer".
        NotFound: "customer_not_found" or "order_not_found".
        Unavailable: "no_assignee" (`pick_assignee`).
    """
    text = description.strip()
    if not text:
        raise Invalid("description_empty", field="description")
    if len(text) > DESCRIPTION_MAX_CHARS:
        raise Invalid("description_too_long", field="description", limit=DESCRIPTION_MAX_CHARS)
    if category not in COMPLAINT_CATEGORIES:
        raise Invalid("category_unknown", field="category")
    if channel not in CONTACT_CHANNELS:
        raise Invalid("channel_unknown", field="channel")
    phone = normalise_phone(contact_phone)
    if phone is None:
        raise Invalid("contact_phone_invalid", field="contact_phone")

    customer: Customer | None = None
    if customer_id is not None:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound("customer_not_found", customer_id=customer_id)
    order: Order | None = None
    if order_id is not None:
        normalised_order = parse_order_id(order_id)
        if normalised_order is None:
            raise Invalid("order_id_malformed", field="order_id")
        order = session.get(Order, normalised_order)
        if order is None:
            raise NotFound("order_not_found", order_id=normalised_order)
        if customer is None or order.customer_id != customer.customer_id:
            # An unverified sender may not tie a ticket to someone's order, nor a customer to another's.
            raise Invalid("order_of_another_customer", field="order_id", order_id=normalised_order)

    if request_key is not None:
        earlier = session.scalar(select(Ticket).where(Ticket.request_key == request_key))
        if earlier is not None:
            return _receipt(earlier, (), created=False)

    moment = now if now is not None else clock.now()
    today = moment.astimezone(clock.TZ).date()
    priority, reasons = complaint_priority(
        session, customer_id=customer_id, text=text, today=today, category=category
    )
    deadline = sla_deadline(priority, moment)
    assignee = pick_assignee(session, region=customer.region if customer is not None else None)

    def build_ticket(ticket_id: str) -> Ticket:
        return Ticket(
            ticket_id=ticket_id,
            customer_id=customer_id,
            category=category,
            priority=priority,
            status=TICKET_STATUS_NEW,
            opened_at=today,
            assignee_id=assignee.employee_id,
            summary=_summarise(text),
            order_id=order.order_id if order is not None else None,
            description=text,
            contact_phone=phone,
            channel=channel,
            due_at=deadline,
            assigned_at=moment,
            request_key=request_key,
        )

    try:
        ticket = add_with_new_id(
            session,
            model=Ticket,
            column=Ticket.ticket_id,
            prefix=TICKET_ID_PREFIX,
            width=TICKET_ID_DIGITS,
            build=build_ticket,
        )
    except IntegrityError:
        # The same request filed concurrently: the other transaction's ticket is the answer.
        if request_key is None:
            raise
        earlier = session.scalar(select(Ticket).where(Ticket.request_key == request_key))
        if earlier is None:
            raise
        return _receipt(earlier, (), created=False)
    ticket_id = ticket.ticket_id

    if customer is not None:
        known_id = customer.customer_id
        add_with_new_id(
            session,
            model=Interaction,
            column=Interaction.interaction_id,
            prefix=INTERACTION_ID_PREFIX,
            width=INTERACTION_ID_DIGITS,
            build=lambda interaction_id: Interaction(
                interaction_id=interaction_id,
                customer_id=known_id,
                employee_id=assignee.employee_id,
                kind=INTERACTION_KIND_MESSAGE,
                occurred_at=today,
                summary=f"客户通过{CHANNEL_LABELS.get(channel, channel)}提交投诉，工单 {ticket_id}"
                f"（{category}，{priority}优先级）",
            ),
        )

    recipient = customer.owner_id if customer is not None and customer.owner_id else assignee.employee_id
    about = f"客户 {customer.customer_id}" if customer is not None else "未验证身份的客户"
    session.add(
        Outbox(
            customer_id=customer.customer_id if customer is not None else None,
            employee_id=recipient,
            channel=STAFF_NOTICE_CHANNEL,
            kind=OUTBOX_KIND_TICKET_NOTICE,
            body=f"新投诉工单 {ticket_id}（{about}）：{category}，{priority}优先级，"
            f"处理人 {assignee.name}，请在 {deadline:%m月%d日 %H:%M} 前处理。",
            dedupe_key=f"{OUTBOX_KIND_TICKET_NOTICE}:{ticket_id}",
        )
    )
    session.add(
        AuditLog(
            actor_role="customer",
            actor_id=customer_id,
            action="create_ticket",
            entity="ticket",
            entity_id=ticket_id,
            detail={
                "category": category,
                "priority": priority,
                "assignee_id": assignee.employee_id,
                "order_id": ticket.order_id,
                "channel": channel,
            },
        )
    )
    session.flush()
    return _receipt(ticket, tuple(reasons), created=True)


NO_ORDER: Final = "无"
"""The chat's complaint form's answer for "no particular order"."""

REGISTERED_PHONE: Final = "预留号码"
"""The chat's complaint form's answer for "call me on the phone you have on file"."""


def file_chat_complaint(
    session: Session,
    *,
    customer_id: str | None,
    order: str | None,
    description: str,
    category: str | None,
    contact_phone: str,
    request_key: str,
    now: datetime | None = None,
) -> ComplaintReceipt:
    """File what the chat's complaint form collected, as `create_complaint` on the web channel.

    Only a verified customer's complaint is linked to an order: anyone can type a number. For a
    sender not verified the order named stays in the description, for staff to see, and the
    ticket has no order. `order` None or `NO_ORDER` means no order; `contact_phone`
    `REGISTERED_PHONE` means the verified customer's phone on file; `category` None means 其他.

    Raises:
        As `create_complaint`; "contact_phone_invalid" when the phone on file is wanted but missing.
    """
    order_id = None if order in (None, NO_ORDER) else order
    if order_id is not None and customer_id is None:
        description, order_id = f"{description}（提到的订单：{order_id}，身份未核实）", None
    phone = contact_phone
    if phone == REGISTERED_PHONE and customer_id is not None:
        phone = registered_phone(session, customer_id=customer_id) or ""
    return create_complaint(
        session,
        customer_id=customer_id,
        order_id=order_id,
        description=description,
        category=category or COMPLAINT_CATEGORY_OTHER,
        contact_phone=phone,
        channel="web",
        now=now,
        request_key=request_key,
    )


def parse_ticket_id(text: str) -> str | None:
    """Normalise a typed ticket number ("t09001", "Ｔ０９００１", "T 09001") to "T09001", or None."""
    if len(text) > 32:
        return None
    normalised = _SPACES.sub("", unicodedata.normalize("NFKC", text)).upper()
    return normalised if _TICKET_ID.fullmatch(normalised) else None


@dataclass(frozen=True)
class TicketStatusView:
    """Where a ticket stands, as a customer may see it: no names, phones or complaint text."""

    ticket_id: str
    status: str
    category: str | None
    priority: str
    opened_at: date
    assignee_role: str | None
    deadline: datetime
    is_open: bool
    is_overdue: bool
    rating: int | None


def _status_view(ticket: Ticket, now: datetime) -> TicketStatusView:
    deadline = _ticket_deadline(ticket)
    is_open = ticket.status in TICKET_OPEN_STATUSES
    return TicketStatusView(
        ticket_id=ticket.ticket_id,
        status=ticket.status,
        category=ticket.category,
        priority=ticket.priority,
        opened_at=ticket.opened_at,
        assignee_role=role_label(ticket.assignee) if ticket.assignee is not None else None,
        deadline=deadline,
        is_open=is_open,
        is_overdue=is_open and now > deadline,
        rating=ticket.rating,
    )


def ticket_status(
    session: Session, *, ticket_id: str, now: datetime | None = None
) -> TicketStatusView | None:
    """The status of a ticket by its number as typed, or None when there is no such ticket."""
    normalised = parse_ticket_id(ticket_id)
    if normalised is None:
        return None
    ticket = session.get(Ticket, normalised)
    if ticket is None:
        return None
    return _status_view(ticket, now if now is not None else clock.now())


def open_tickets(
    session: Session, *, customer_id: str, now: datetime | None = None
) -> list[TicketStatusView]:
    """The customer's tickets still 新建 or 处理中, newest first."""
    stmt = (
        select(Ticket)
        .where(Ticket.customer_id == customer_id, Ticket.status.in_(sorted(TICKET_OPEN_STATUSES)))
        .order_by(Ticket.opened_at.desc(), Ticket.ticket_id.desc())
    )
    moment = now if now is not None else clock.now()
    return [_status_view(ticket, moment) for ticket in session.scalars(stmt)]


def check_rating(rating: object) -> int:
    """`rating` if it is a whole number from `RATING_MIN` to `RATING_MAX`.

    Raises:
        Invalid: Anything else, including True/False and 4.5 (code "rating_out_of_range").
    """
    if isinstance(rating, bool) or not isinstance(rating, int) or not RATING_MIN <= rating <= RATING_MAX:
        raise Invalid("rating_out_of_range", field="rating", min=RATING_MIN, max=RATING_MAX)
    return rating


def rate_ticket(session: Session, *, ticket_id: str, rating: int, now: datetime | None = None) -> None:
    """Store the customer's satisfaction rating (1–5) on the ticket; a later rating replaces it.

    Raises:
        Invalid: The rating is not 1 to 5 ("rating_out_of_range").
        NotFound: No such ticket ("ticket_not_found").
    """
    value = check_rating(rating)
    normalised = parse_ticket_id(ticket_id)
    ticket = session.get(Ticket, normalised) if normalised is not None else None
    if ticket is None:
        # The number as typed, cut short: it names a ticket, never a person.
        raise NotFound("ticket_not_found", ticket_id=normalised or ticket_id[:32])
    ticket.rating = value
    ticket.rated_at = now if now is not None else clock.now()
    session.flush()
