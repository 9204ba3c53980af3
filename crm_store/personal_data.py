"""A customer's personal data on request (PIPL, docs/requirements.md §7): export, erasure, retention.

* `export_customer`: everything held about one customer, as plain JSON-ready data: the profile,
  orders, tickets, visits and calls, opportunities, tasks, outbox messages, hand-off cases with
  their transcripts and staff messages, WeChat links, FAQ votes and unanswered questions they
  asked, and their conversations in Rasa's tracker store.
* `erase_customer`: the customer's name, phone, e-mail, birthday, notes and preferences are removed,
  the free texts of their records (tickets, visits, messages, hand-off transcripts) are replaced
  by `ERASED_TEXT`, their conversations in the tracker store are blanked, and their name, phone and
  e-mail are masked wherever else they occur as free text (another customer's notes, a task's
  title, a staff chat). Orders keep their amounts, dates and items, so the sales figures do not
  change: the customer row stays, under its id and `ANONYMOUS_NAME`, which no longer leads to a
  person. Erasing twice is harmless: the second run finds nothing left to remove.
* `forget_old_conversations`: the retention rule (`PrivacySettings.conversation_retention_days`),
  run nightly by the care scheduler: texts of tracker events and of hand-off transcripts older than
  the limit are blanked.

**Which conversations are the customer's.** The code links a chat to a customer in three places:
the slot `verified_customer_id` set by the identity check (in the tracker store), the audit row
`verify_customer` (the conversation by its pseudonym, `conversation_key`), a hand-off case's
`customer_id`, and a WeChat follower's link (`wechat:<openid>`). A conversation found through any
of them is the customer's. Staff chats (`staff:…`) are never a customer's, though a name typed in
one is masked on erasure like any other free text.

**The tracker store** is Rasa's `events` table (`crm_store.analytics.service_metrics.TRACKER_EVENTS`).
Events are kept, so counts (conversations, turns, fallbacks) stay right: only their JSON changes.
A blanked event has empty `text` fields, no free-text slot values, and `"redacted": true`; an
erased customer's conversation also gets a new sender id (`erased:<pseudonym>`), since a WeChat
sender id holds the follower's openid. The tracker store is another database (or, on PostgreSQL,
other tables read by another engine): its changes are committed by these functions before the
CRM store's, which the caller commits. If that commit fails, running the erasure again completes it.

Only admins may export or erase (`Forbidden("role_not_allowed")`), and the `OPERATOR` (whoever runs
`crmbot privacy` on the server holds the database already); both are audited with counts only,
never the data itself.
"""

import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from sqlalchemy import JSON, Engine, String, Text, cast, delete, inspect, make_url, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.access import Actor, require_role
from crm_store.accounts import OPERATOR
from crm_store.analytics.service_metrics import CUSTOMER_SLOT, STAFF_CONVERSATION_PREFIX, TRACKER_EVENTS
from crm_store.audit import audit
from crm_store.db import create_engine_for
from crm_store.errors import NotFound
from crm_store.faqs import question_key
from crm_store.models import (
    AuditLog,
    Base,
    Customer,
    FaqFeedback,
    FaqUnanswered,
    HandoffCase,
    HandoffMessage,
    Interaction,
    Opportunity,
    Order,
    Outbox,
    Task,
    Ticket,
    VerificationAttempt,
    WechatLink,
)
from crm_store.privacy import MASK, conversation_key, normalise_phone, phone_key
from crm_store.settings import get_store_settings
from crm_store.vocab import (
    HANDOFF_STATUS_CLOSED,
    HANDOFF_STATUS_OPEN,
    OUTBOX_STATUS_PENDING,
    OUTBOX_STATUS_SENDING,
    OUTBOX_STATUS_SKIPPED,
)
from crm_store.wechat_links import wechat_conversation

__all__ = [
    "ANONYMOUS_NAME",
    "ERASED_CONVERSATION_PREFIX",
    "ERASED_TEXT",
    "ErasureReport",
    "RetentionReport",
    "customer_conversations",
    "erase_customer",
    "export_customer",
    "forget_old_conversations",
    "tracker_store",
]

PRIVACY_ROLES: Final = ("admin",)
"""Who may export or erase a customer's personal data."""
ANONYMOUS_NAME: Final = "匿名客户"
"""The name an erased customer keeps (the column is required); their id no longer leads to a person."""
ERASED_TEXT: Final = "（已删除）"
"""What replaces an erased free text in a column that cannot be empty (a ticket's summary …)."""
ERASED_CONVERSATION_PREFIX: Final = "erased:"
"""An erased customer's conversations are renamed `erased:<conversation_key>` in the tracker store
and on their hand-off cases."""
REDACTED_FLAG: Final = "redacted"
"""Set to true in a tracker event's JSON once its texts are blanked, so it is not read again."""

KEPT_SLOTS: Final[frozenset[str]] = frozenset(
    {
        CUSTOMER_SLOT,  # the customer id: the service metrics' scope, no person once erased
        "faq_answered_id",
        "ticket_id",
        "order_id",
        "complaint_order",
        "complaint_category",
        "complaint_category_guess",
        "rating_target",
        "verify_order_id",
        "listed_orders",
        "care_rule",
        "requested_slot",
    }
)
"""Slots whose values are ids or categories (bot/domain/*.yml); every other slot's value may be
something the customer typed (a complaint's description, a phone) and is blanked with the texts."""

_MIN_NAME_CHARS: Final = 2
# A one-character "name" would mask that character in every text of the store.
_BATCH: Final = 500
_PHONE_SEPARATOR: Final = r"[\s\-－.]?"


# -- the tracker store ---------------------------------------------------------------------------


def tracker_store(url: str | None = None) -> Engine | None:
    """A writable engine on Rasa's tracker store (`StoreSettings.tracker_database_url` by default).

    None when there is none: a SQLite file that does not exist yet (Rasa never ran) is not created.
    The dashboard reads the same store read-only (`service_metrics.tracker_engine`); erasing and
    forgetting must write.
    """
    target = url if url is not None else get_store_settings().tracker_database_url()
    sa_url = make_url(target)
    if sa_url.get_backend_name() == "sqlite" and (
        not sa_url.database or sa_url.database == ":memory:" or not Path(sa_url.database).is_file()
    ):
        return None
    return create_engine_for(target)


def _has_events(connection: Connection) -> bool:
    return bool(inspect(connection).has_table(TRACKER_EVENTS.name))


def _load(data: str | None) -> dict[str, Any]:
    try:
        loaded = json.loads(data or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _blank_event(event: dict[str, Any]) -> None:
    """Blank the texts of one event's JSON in place: what was said, shown, or typed into a slot."""
    kind = event.get("event")
    if kind in ("user", "bot") and event.get("text") is not None:
        event["text"] = ""
    if kind == "user":
        parse = event.get("parse_data")
        if isinstance(parse, dict):
            parse["text"] = ""
            for entity in parse.get("entities") or ():
                if isinstance(entity, dict):
                    entity["value"] = ""
    if kind == "bot":
        event["data"] = {}  # buttons, quick replies: the bot's words again
    if kind == "slot" and event.get("name") not in KEPT_SLOTS:
        event["value"] = None
    event[REDACTED_FLAG] = True


def _events_of(connection: Connection, senders: Collection[str]) -> Iterator[Any]:
    events = TRACKER_EVENTS.c
    for chunk in _chunks(senders):
        yield from connection.execute(
            select(events.id, events.sender_id, events.type_name, events.timestamp, events.data)
            .where(events.sender_id.in_(chunk))
            .order_by(events.sender_id, events.id)
        )


def _chunks(values: Collection[str]) -> Iterator[list[str]]:
    items = sorted(values)
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _speaker_texts(connection: Connection, senders: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """What was said in each conversation: {"who": "customer" | "bot", "text", "at"}, oldest first."""
    found: dict[str, list[dict[str, Any]]] = {sender: [] for sender in senders}
    for row in _events_of(connection, senders):
        if row.type_name not in ("user", "bot"):
            continue
        event = _load(row.data)
        text = event.get("text")
        if not text:
            continue
        at = datetime.fromtimestamp(row.timestamp, clock.TZ).isoformat() if row.timestamp else None
        found[row.sender_id].append(
            {"who": "customer" if row.type_name == "user" else "bot", "text": text, "at": at}
        )
    return found


def customer_conversations(session: Session, tracker: Engine | None, customer_id: str) -> set[str]:
    """The sender ids of the customer's chats, found every way the code links one (module docstring)."""
    senders = set(
        session.scalars(select(HandoffCase.sender_id).where(HandoffCase.customer_id == customer_id))
    )
    senders.update(
        wechat_conversation(openid)
        for openid in session.scalars(select(WechatLink.openid).where(WechatLink.customer_id == customer_id))
    )
    if tracker is not None:
        keys = set(
            session.scalars(
                select(AuditLog.actor_id).where(
                    AuditLog.action == "verify_customer",
                    AuditLog.entity == "customer",
                    AuditLog.entity_id == customer_id,
                    AuditLog.actor_id.is_not(None),
                )
            )
        )
        events = TRACKER_EVENTS.c
        with tracker.connect() as connection:
            if _has_events(connection):
                slots = connection.execute(
                    select(events.sender_id, events.data).where(
                        events.type_name == "slot",
                        events.action_name == CUSTOMER_SLOT,
                        events.data.contains(json.dumps(customer_id), autoescape=True),
                    )
                )
                senders.update(row.sender_id for row in slots if _load(row.data).get("value") == customer_id)
                if keys:
                    every = connection.scalars(select(events.sender_id).distinct())
                    senders.update(sender for sender in every if conversation_key(sender) in keys)
    return {sender for sender in senders if not sender.startswith(STAFF_CONVERSATION_PREFIX)}


# -- export --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(record: Base, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Every column of a record, as JSON-ready values."""
    left_out = set(skip)
    return {
        column.key: _plain(getattr(record, column.key))
        for column in inspect(type(record)).columns
        if column.key not in left_out
    }


def _unanswered_asked(session: Session, texts: Iterable[str]) -> list[FaqUnanswered]:
    keys = {key for key in (question_key(text) for text in texts) if key}
    found: list[FaqUnanswered] = []
    for chunk in _chunks(keys):
        found.extend(session.scalars(select(FaqUnanswered).where(FaqUnanswered.normalized_key.in_(chunk))))
    return sorted(found, key=lambda row: row.id)


def _require_privacy_role(actor: Actor) -> None:
    if actor != OPERATOR:
        require_role(actor, *PRIVACY_ROLES)


def _customer(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    return customer


def export_customer(
    session: Session, actor: Actor, customer_id: str, *, tracker: Engine | None = None
) -> dict[str, Any]:
    """Everything held about the customer, as JSON-ready data (`crmbot privacy export --json`).

    Args:
        tracker: Rasa's tracker store (`tracker_store()`); None leaves out the conversations.

    Raises:
        Forbidden: Neither an admin nor the operator ("staff_only", "role_not_allowed").
        NotFound: No such customer ("customer_not_found").
    """
    _require_privacy_role(actor)
    customer = _customer(session, customer_id)
    senders = customer_conversations(session, tracker, customer_id)
    conversations: dict[str, list[dict[str, Any]]] = {}
    if tracker is not None and senders:
        with tracker.connect() as connection:
            if _has_events(connection):
                conversations = _speaker_texts(connection, senders)
    orders = session.scalars(select(Order).where(Order.customer_id == customer_id).order_by(Order.order_id))
    cases = list(
        session.scalars(
            select(HandoffCase)
            .where(or_(HandoffCase.customer_id == customer_id, HandoffCase.sender_id.in_(senders)))
            .order_by(HandoffCase.id)
        )
    )
    keys = {conversation_key(sender) for sender in senders}
    typed = [line["text"] for lines in conversations.values() for line in lines if line["who"] == "customer"]
    typed += [
        str(entry.get("text") or "")
        for case in cases
        for entry in case.transcript
        if isinstance(entry, dict) and entry.get("who") == "customer"
    ]

    def of_customer(model: Any, order_by: Any) -> list[dict[str, Any]]:
        return [
            _row(r)
            for r in session.scalars(select(model).where(model.customer_id == customer_id).order_by(order_by))
        ]

    data: dict[str, Any] = {
        "customer_id": customer_id,
        "exported_at": clock.now().isoformat(),
        "profile": _row(customer),
        "orders": [
            {
                **_row(order),
                "items": [
                    {**_row(item, skip=("order_id",)), "product_name": item.product.name}
                    for item in order.items
                ],
            }
            for order in orders
        ],
        "tickets": of_customer(Ticket, Ticket.ticket_id),
        "interactions": of_customer(Interaction, Interaction.interaction_id),
        "opportunities": of_customer(Opportunity, Opportunity.opportunity_id),
        "tasks": of_customer(Task, Task.id),
        "outbox": of_customer(Outbox, Outbox.id),
        "handoff_cases": [
            {**_row(case), "staff_messages": [_row(m, skip=("case_id",)) for m in case.messages]}
            for case in cases
        ],
        "wechat_links": of_customer(WechatLink, WechatLink.openid),
        "faq_votes": [
            _row(vote, skip=("conversation_key",))
            for chunk in _chunks(keys)
            for vote in session.scalars(select(FaqFeedback).where(FaqFeedback.conversation_key.in_(chunk)))
        ],
        "unanswered_questions": [
            _row(row, skip=("normalized_key",)) for row in _unanswered_asked(session, typed)
        ],
        "conversations": [
            {"conversation": sender, "messages": conversations.get(sender, [])} for sender in sorted(senders)
        ],
    }
    audit(
        session,
        actor,
        "export_personal_data",
        entity="customer",
        entity_id=customer_id,
        fields=[section for section, value in data.items() if isinstance(value, list) and value],
    )
    session.flush()
    return data


# -- erasure -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureReport:
    """What one erasure changed, as counts: the audit row's detail and the command's summary."""

    customer_id: str
    already_erased: bool
    conversations: int
    tracker_events: int
    tickets: int
    interactions: int
    outbox_messages: int
    handoff_cases: int
    wechat_links: int
    unanswered_questions: int
    masked_elsewhere: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _needle_patterns(needles: Iterable[str]) -> list[re.Pattern[str]]:
    patterns: list[re.Pattern[str]] = []
    for needle in needles:
        phone = normalise_phone(needle)
        if phone is not None:
            # Typed as people type it: "180 2716 6039", "+86-180-2716-6039".
            body = _PHONE_SEPARATOR.join(phone)
            patterns.append(re.compile(rf"(?<![0-9])(?:(?:\+|00)?86{_PHONE_SEPARATOR})?{body}(?![0-9])"))
        else:
            patterns.append(re.compile(re.escape(needle), re.IGNORECASE))
    return patterns


def _scrubber(needles: Collection[str]) -> Callable[[Any], Any]:
    """A function masking the needles in a text, or in every string of a JSON value."""
    patterns = _needle_patterns(needles)

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            for pattern in patterns:
                value = pattern.sub(MASK, value)
            return value
        if isinstance(value, list):
            return [scrub(item) for item in value]
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        return value

    return scrub


def _search_forms(needles: Iterable[str]) -> set[str]:
    """Each needle as stored: as typed, and as JSON escapes it (Rasa and SQLAlchemy write ASCII JSON)."""
    forms: set[str] = set()
    for needle in needles:
        forms.add(needle)
        forms.add(json.dumps(needle)[1:-1])
    return forms


def _needles(session: Session, customer: Customer) -> set[str]:
    """The customer's identifiers that may sit in free text: name, phone numbers, e-mail."""
    found = {customer.phone, customer.email}
    if customer.name != ANONYMOUS_NAME and len(customer.name.strip()) >= _MIN_NAME_CHARS:
        found.add(customer.name.strip())
    found.update(
        session.scalars(
            select(Ticket.contact_phone).where(
                Ticket.customer_id == customer.customer_id, Ticket.contact_phone.is_not(None)
            )
        )
    )
    return {needle.strip() for needle in found if needle and needle.strip()}


def _erased_sender(sender: str) -> str:
    if sender.startswith(ERASED_CONVERSATION_PREFIX):
        return sender
    return f"{ERASED_CONVERSATION_PREFIX}{conversation_key(sender)}"


def _erase_tracker(
    tracker: Engine | None, senders: Collection[str], needles: Collection[str]
) -> tuple[int, list[str]]:
    """Blank and rename the customer's conversations, mask the needles in every other event.

    Returns the number of events changed and what the customer typed (to find their unanswered
    questions), read before it is blanked. Committed here, in the tracker store's own transaction.
    """
    if tracker is None:
        return 0, []
    events = TRACKER_EVENTS.c
    scrub = _scrubber(needles)
    changed = 0
    typed: list[str] = []
    with tracker.begin() as connection:
        if not _has_events(connection):
            return 0, []
        for row in list(_events_of(connection, senders)):
            event = _load(row.data)
            if row.type_name == "user" and event.get("text"):
                typed.append(str(event["text"]))
            _blank_event(event)
            connection.execute(
                update(TRACKER_EVENTS)
                .where(events.id == row.id)
                .values(data=json.dumps(scrub(event)), sender_id=_erased_sender(row.sender_id))
            )
            changed += 1
        forms = _search_forms(needles)
        if forms:
            mentions = connection.execute(
                select(events.id, events.data).where(
                    or_(*(events.data.contains(form, autoescape=True) for form in forms))
                )
            )
            for row in list(mentions):
                event = _load(row.data)
                scrubbed = scrub(event)
                if scrubbed != event:
                    connection.execute(
                        update(TRACKER_EVENTS).where(events.id == row.id).values(data=json.dumps(scrubbed))
                    )
                    changed += 1
    return changed, typed


def _blank_transcript(transcript: Iterable[Any], keep: Callable[[dict[str, Any]], bool]) -> list[Any]:
    return [
        {**entry, "text": ""} if isinstance(entry, dict) and entry.get("text") and not keep(entry) else entry
        for entry in transcript
    ]


def _erase_unanswered(
    session: Session, asked: list[FaqUnanswered], scrub: Callable[[Any], Any], forms: set[str]
) -> int:
    """Mask the needles in queued questions (theirs, and any naming them), keeping repeats together.

    A masked question may now share its key with another row: the two are one question, so its
    count is added to that row and the masked one goes.
    """
    rows = {row.id: row for row in asked}
    if forms:
        for row in session.scalars(
            select(FaqUnanswered).where(
                or_(*(FaqUnanswered.question.contains(f, autoescape=True) for f in forms))
            )
        ):
            rows[row.id] = row
    changed = 0
    for row in rows.values():
        question = scrub(row.question)
        if question == row.question:
            continue
        changed += 1
        key = question_key(question)
        twin = session.scalar(
            select(FaqUnanswered).where(FaqUnanswered.normalized_key == key, FaqUnanswered.id != row.id)
        )
        if twin is not None:
            twin.count += row.count
            twin.first_asked_at = min(twin.first_asked_at, row.first_asked_at)
            twin.last_asked_at = max(twin.last_asked_at, row.last_asked_at)
            session.delete(row)
        else:
            row.question, row.normalized_key = question, key
        session.flush()
    return changed


def _free_text_columns() -> Iterator[tuple[Any, Any]]:
    """(table, column) of every column of the CRM store that may hold free text.

    Text and JSON columns, and strings of 100 characters or more (a task's title, an opportunity's
    name); never a key, and never `faq_unanswered`, whose question and key move together
    (`_erase_unanswered`).
    """
    for table in Base.metadata.sorted_tables:
        if table.name == FaqUnanswered.__tablename__:
            continue
        for column in table.columns:
            if column.primary_key or column.foreign_keys:
                continue
            kind = column.type
            if isinstance(kind, Text | JSON) or (isinstance(kind, String) and (kind.length or 0) >= 100):
                yield table, column


def _mask_everywhere(session: Session, scrub: Callable[[Any], Any], forms: set[str]) -> int:
    """Mask the needles in every free-text column of every table; returns the cells changed."""
    if not forms:
        return 0
    changed = 0
    for table, column in _free_text_columns():
        searched = cast(column, Text) if isinstance(column.type, JSON) else column
        keys = list(table.primary_key.columns)
        rows = session.execute(
            select(*keys, column).where(or_(*(searched.contains(f, autoescape=True) for f in forms)))
        ).all()
        for row in rows:
            value = row[-1]
            masked = scrub(value)
            if masked == value:
                continue
            session.execute(
                update(table)
                .where(*(key == row[i] for i, key in enumerate(keys)))
                .values({column.name: masked})
            )
            changed += 1
    return changed


def erase_customer(
    session: Session, actor: Actor, customer_id: str, *, tracker: Engine | None = None
) -> ErasureReport:
    """Erase the customer's personal data everywhere, keeping their orders for the figures; audited.

    What goes and what stays is in the module's docstring. The tracker store's changes are
    committed here; the CRM store's are flushed, and the caller commits.

    Raises:
        Forbidden: Neither an admin nor the operator ("staff_only", "role_not_allowed").
        NotFound: No such customer ("customer_not_found").
    """
    _require_privacy_role(actor)
    customer = _customer(session, customer_id)
    already = session.scalar(
        select(AuditLog.id).where(
            AuditLog.action == "erase_customer",
            AuditLog.entity == "customer",
            AuditLog.entity_id == customer_id,
        )
    )
    needles = _needles(session, customer)
    scrub = _scrubber(needles)
    forms = _search_forms(needles)
    senders = customer_conversations(session, tracker, customer_id)
    events, typed = _erase_tracker(tracker, senders, needles)
    now = clock.now()

    cases = list(
        session.scalars(
            select(HandoffCase).where(
                or_(HandoffCase.customer_id == customer_id, HandoffCase.sender_id.in_(senders))
            )
        )
    )
    typed += [
        str(entry.get("text") or "")
        for case in cases
        for entry in case.transcript
        if isinstance(entry, dict) and entry.get("who") == "customer" and entry.get("text")
    ]
    unanswered = _erase_unanswered(session, _unanswered_asked(session, typed), scrub, forms)
    for case in cases:
        case.transcript = _blank_transcript(case.transcript, keep=lambda entry: False)
        case.sender_id = _erased_sender(case.sender_id)
        if case.status == HANDOFF_STATUS_OPEN:
            case.status, case.closed_at = HANDOFF_STATUS_CLOSED, now
        for message in case.messages:
            message.text = ERASED_TEXT

    keys = [conversation_key(sender) for sender in senders]
    for chunk in _chunks(keys):
        session.execute(update(FaqFeedback).where(FaqFeedback.conversation_key.in_(chunk)).values(query=None))
    tickets = session.execute(
        update(Ticket)
        .where(Ticket.customer_id == customer_id)
        .values(summary=ERASED_TEXT, description=None, contact_phone=None, updated_at=now)
    )
    interactions = session.execute(
        update(Interaction)
        .where(Interaction.customer_id == customer_id)
        .values(summary=ERASED_TEXT, next_step=None, updated_at=now)
    )
    session.execute(
        update(Outbox)
        .where(
            Outbox.customer_id == customer_id,
            Outbox.status.in_((OUTBOX_STATUS_PENDING, OUTBOX_STATUS_SENDING)),
        )
        .values(status=OUTBOX_STATUS_SKIPPED)
    )
    outbox = session.execute(
        update(Outbox).where(Outbox.customer_id == customer_id).values(body=ERASED_TEXT, last_error=None)
    )
    links = session.execute(delete(WechatLink).where(WechatLink.customer_id == customer_id))
    phones = {customer.phone} | {n for n in needles if normalise_phone(n)}
    subjects = [f"phone:{phone_key(p)}" for p in phones if p]
    if subjects:
        session.execute(delete(VerificationAttempt).where(VerificationAttempt.subject.in_(subjects)))

    customer.name = ANONYMOUS_NAME
    customer.company = customer.birthday = customer.phone = customer.email = None
    customer.notes = customer.preferences = customer.channel_pref = None
    customer.opt_out = True
    session.flush()
    elsewhere = _mask_everywhere(session, scrub, forms)
    session.expire_all()

    report = ErasureReport(
        customer_id=customer_id,
        already_erased=already is not None,
        conversations=len(senders),
        tracker_events=events,
        tickets=_count(tickets),
        interactions=_count(interactions),
        outbox_messages=_count(outbox),
        handoff_cases=len(cases),
        wechat_links=_count(links),
        unanswered_questions=unanswered,
        masked_elsewhere=elsewhere,
    )
    detail = {key: value for key, value in report.to_json().items() if key != "customer_id"}
    audit(session, actor, "erase_customer", entity="customer", entity_id=customer_id, **detail)
    session.flush()
    return report


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# -- retention -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionReport:
    """What one pass of the retention rule blanked."""

    tracker_events: int
    handoff_cases: int
    staff_messages: int


def forget_old_conversations(
    session: Session, tracker: Engine | None, *, before: datetime
) -> RetentionReport:
    """Blank the texts of conversations older than `before` (a CRM time): tracker events, hand-off
    transcript entries and delivered staff messages. The rows stay, for the counts.

    The tracker store's changes are committed here, batch by batch; the CRM store's are flushed.
    """
    events = 0
    if tracker is not None:
        c = TRACKER_EVENTS.c
        # The tracker stamps real time; `before` is on the CRM's (possibly pinned) calendar.
        shift = clock.crm_time(datetime.now(clock.TZ)) - datetime.now(clock.TZ)
        cutoff = (before - shift).timestamp()
        last_id = 0
        while True:
            with tracker.begin() as connection:
                if not _has_events(connection):
                    break
                rows = connection.execute(
                    select(c.id, c.data)
                    .where(
                        c.id > last_id,
                        c.timestamp < cutoff,
                        c.type_name.in_(("user", "bot", "slot")),
                        ~c.data.contains(f'"{REDACTED_FLAG}": true', autoescape=True),
                    )
                    .order_by(c.id)
                    .limit(_BATCH)
                ).all()
                for row in rows:
                    event = _load(row.data)
                    _blank_event(event)
                    connection.execute(
                        update(TRACKER_EVENTS).where(c.id == row.id).values(data=json.dumps(event))
                    )
            events += len(rows)
            if len(rows) < _BATCH:
                break
            last_id = rows[-1].id

    cases = 0
    for case in session.scalars(select(HandoffCase).where(HandoffCase.opened_at < before)):
        blanked = _blank_transcript(case.transcript, keep=lambda entry: not _older(entry, before))
        if blanked != case.transcript:
            case.transcript = blanked
            cases += 1
    messages = session.execute(
        update(HandoffMessage)
        .where(
            HandoffMessage.created_at < before,
            HandoffMessage.delivered_at.is_not(None),
            HandoffMessage.text != "",
        )
        .values(text="")
    )
    session.flush()
    return RetentionReport(tracker_events=events, handoff_cases=cases, staff_messages=_count(messages))


def _older(entry: dict[str, Any], before: datetime) -> bool:
    try:
        at = datetime.fromisoformat(str(entry.get("at")))
    except ValueError:
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=clock.TZ)
    return at < before
