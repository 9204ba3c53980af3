"""Service metrics: how well the assistant serves customers, from Rasa's tracker store and the CRM store.

Managers read them on the dashboard (`GET /api/analytics/service-metrics`). Each figure is over a
period of CRM days (`Period`, closed) and over the asker's scope; only managers and admins may read
them (`Forbidden("role_not_allowed")` otherwise).

**Conversations** are the customers' chats: the distinct `sender_id`s of Rasa's tracker store
with a user message in the period. Staff chats (`staff:<employee_id>:…`,
`STAFF_CONVERSATION_PREFIX`) are not service and are left out.

- **conversations**: distinct customer conversations with a user message in the period;
  **by channel**: the same, by the channel their first user message of the period came through
  (`channel` in the message's metadata, stamped by the API's gateway: `web`, `socketio`, `wechat`;
  a message without one is the web chat's, `DEFAULT_CHANNEL`).
- **deflection rate** = conversations resolved by the assistant (a FAQ answered, or a self-service
  action ran: `SELF_SERVICE_ACTIONS`) with no hand-off case opened in the period / conversations.
- **fallback rate** = user turns the bot answered with a fallback action (`FALLBACK_ACTIONS`) /
  user turns.
- **hand-off rate** = conversations with a hand-off case (crm_store.handoff) opened in the period /
  conversations.
- **average CSAT** = mean of the 1–5 ratings given in the period to tickets and to hand-off cases.
- **care delivery success** = care messages (the outbox) queued in the period that were sent /
  those sent or failed (pending or skipped ones are not deliveries yet, or never were).

- **A FAQ answered** is Rasa's slot `faq_answered_id` set to a FAQ (`FAQ_ANSWER_SLOT`): the bot
  gave that FAQ's answer (asked directly, chosen from suggestions, or found after a fallback).
- **A user turn** is a user event; it is a fallback turn when one of the actions the bot ran
  before the next user message is a fallback action (Rasa's core fallback, or the NLU fallback's
  `action_handle_fallback`, which may still answer from the FAQs; it counts as not understood).
- **Rates** are fractions from 0 to 1, None when their denominator is 0 (nothing to rate).

**Time.** Rasa stamps events with the real time; the CRM's calendar may be pinned (`CRM_TODAY`,
demos). Event times are placed on the CRM's calendar exactly as the hand-off transcript's are
(`crm_store.clock.crm_time`), so "the last 30 days" are the same days in both stores.

**Scope.** A conversation belongs to the customer it verified as (slot `verified_customer_id`,
`CUSTOMER_SLOT`) or, failing that, to its hand-off case's customer. A manager of a region counts
the conversations, ratings and care messages of their region's customers; an admin or a 全国
manager counts everything, anonymous conversations and unverified tickets included.

The tracker store is read with SQLAlchemy Core, read-only (a SQLite file is opened `mode=ro`),
one streamed pass over the period's relevant events; a missing tracker (Rasa never ran) reads as
no conversation. Nothing is written or logged with a sender id.
"""

import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Float,
    Integer,
    MetaData,
    SQLColumnExpression,
    String,
    Table,
    Text,
    and_,
    case,
    cast,
    create_engine,
    func,
    inspect,
    make_url,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.access import ALL_REGIONS, Actor, customer_scope, require_role
from crm_store.analytics.customer_value import csat_average
from crm_store.analytics.spec import Period
from crm_store.db import create_engine_for
from crm_store.models import Customer, HandoffCase, Outbox
from crm_store.settings import get_store_settings
from crm_store.vocab import OUTBOX_STATUS_FAILED, OUTBOX_STATUS_SENT

__all__ = [
    "CUSTOMER_SLOT",
    "FALLBACK_ACTIONS",
    "FAQ_ANSWER_SLOT",
    "SELF_SERVICE_ACTIONS",
    "STAFF_CONVERSATION_PREFIX",
    "TRACKER_EVENTS",
    "ServiceMetrics",
    "service_metrics",
    "tracker_engine",
]

SELF_SERVICE_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "action_check_order_status",  # where an order is, its carrier and tracking number
        "action_list_my_orders",  # a verified customer's orders
        "action_pick_listed_order",  # one of the listed orders, chosen
        "action_check_complaint_status",  # where a complaint ticket stands
        "action_unsubscribe",  # opting out of marketing and care messages
    }
)
"""The actions of actions/*.py that serve a customer's request by themselves, with no person.

Filing a complaint (`action_submit_complaint`) is not one: a ticket is work for an agent."""

FALLBACK_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "action_handle_fallback",  # the NLU fallback's rule (actions/handoff.py, bot/data/rules)
        "action_default_fallback",  # Rasa's core fallback (config.yml core_fallback_action_name)
    }
)
"""The actions the bot runs when it did not understand a message."""

FAQ_ANSWER_SLOT: Final = "faq_answered_id"
"""Set to a FAQ's id when the bot gave that FAQ's answer (actions/faq.py, actions/support.py)."""
CUSTOMER_SLOT: Final = "verified_customer_id"
"""Set to the customer's id once the sender proved to be that customer (actions/identity.py)."""
STAFF_CONVERSATION_PREFIX: Final = "staff:"
"""Staff chats are `staff:<employee_id>:<sender>` in Rasa (api/routes/chat.py)."""

_tracker_metadata = MetaData()
TRACKER_EVENTS: Final = Table(
    "events",
    _tracker_metadata,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)
"""Rasa 3.6's `SQLTrackerStore` table (rasa/core/tracker_store.py `SQLEvent`), read only.

`timestamp` is the event's real time in seconds since the epoch; `action_name` holds the name of
an action event and the slot of a slot event; `data` is the whole event as JSON."""

DEFAULT_CHANNEL: Final = "web"
"""The channel of a user message whose metadata names none (api.gateway: the web chat's)."""
_STREAM_ROWS: Final = 2000
_IN_CHUNK: Final = 500


def tracker_engine(url: str | None = None) -> Engine | None:
    """A read-only engine on the tracker store (`StoreSettings.tracker_database_url` by default); None
    when there is none.

    A SQLite tracker is opened read-only (`mode=ro`), so reading can never create or change
    Rasa's file; a file that does not exist yet (Rasa never ran) gives None.
    """
    sa_url = make_url(url if url is not None else get_store_settings().tracker_database_url())
    if sa_url.get_backend_name() != "sqlite":
        return create_engine_for(sa_url.render_as_string(hide_password=False))
    if not sa_url.database or sa_url.database == ":memory:":
        return None
    path = Path(sa_url.database).resolve()
    if not path.is_file():
        return None
    return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", hide_parameters=True)


@dataclass(frozen=True)
class ServiceMetrics:
    """The service figures of one period and scope (formulas in the module's docstring)."""

    period: Period
    conversations: int
    conversations_by_channel: dict[str, int]
    deflected_conversations: int
    handoff_conversations: int
    user_turns: int
    fallback_turns: int
    csat_ratings: int
    csat_average: float | None
    care_sent: int
    care_failed: int

    @property
    def deflection_rate(self) -> float | None:
        return _rate(self.deflected_conversations, self.conversations)

    @property
    def handoff_rate(self) -> float | None:
        return _rate(self.handoff_conversations, self.conversations)

    @property
    def fallback_rate(self) -> float | None:
        return _rate(self.fallback_turns, self.user_turns)

    @property
    def care_delivery_rate(self) -> float | None:
        return _rate(self.care_sent, self.care_sent + self.care_failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period.to_json(),
            "conversations": self.conversations,
            "conversations_by_channel": dict(self.conversations_by_channel),
            "deflected_conversations": self.deflected_conversations,
            "deflection_rate": self.deflection_rate,
            "handoff_conversations": self.handoff_conversations,
            "handoff_rate": self.handoff_rate,
            "user_turns": self.user_turns,
            "fallback_turns": self.fallback_turns,
            "fallback_rate": self.fallback_rate,
            "csat_ratings": self.csat_ratings,
            "csat_average": self.csat_average,
            "care_sent": self.care_sent,
            "care_failed": self.care_failed,
            "care_delivery_rate": self.care_delivery_rate,
        }


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _sees_everyone(actor: Actor) -> bool:
    return actor.role == "admin" or (actor.role == "manager" and actor.region == ALL_REGIONS)


def _day_start(day: date) -> datetime:
    """The first instant of a CRM day, in China."""
    return datetime.combine(day, time(0), tzinfo=clock.TZ)


def _real_epoch(crm_instant: datetime) -> float:
    """The real time (epoch seconds) that the CRM's calendar shows as `crm_instant`.

    The inverse of `clock.crm_time`, which moves real instants by whole days onto a pinned calendar.
    """
    real_now = datetime.now(clock.TZ)
    shift = clock.crm_time(real_now) - real_now
    return (crm_instant - shift).timestamp()


@dataclass
class _Conversation:
    user_turns: int = 0
    fallback_turns: int = 0
    resolved: bool = False
    customer_id: str | None = None
    channel: str = DEFAULT_CHANNEL


def _slot_value(data: str | None) -> Any:
    try:
        return json.loads(data or "{}").get("value")
    except (ValueError, AttributeError):
        return None


def _channel_of(tracker: Connection) -> ColumnElement[Any]:
    """A user event's channel, read from its JSON in the database (the rest of its JSON is not fetched)."""
    data = TRACKER_EVENTS.c.data
    if tracker.dialect.name == "postgresql":
        return func.jsonb_extract_path_text(cast(data, JSONB), "metadata", "channel")
    return func.json_extract(data, "$.metadata.channel")


def _events(tracker: Connection, since: float, until: float) -> Iterator[Any]:
    """The period's events that matter, conversation by conversation, in their order."""
    events = TRACKER_EVENTS.c
    relevant = or_(
        events.type_name == "user",
        and_(events.type_name == "action", events.action_name.in_(SELF_SERVICE_ACTIONS | FALLBACK_ACTIONS)),
        and_(events.type_name == "slot", events.action_name.in_((FAQ_ANSWER_SLOT, CUSTOMER_SLOT))),
    )
    statement = (
        select(
            events.sender_id,
            events.type_name,
            events.action_name,
            # Only a slot event's JSON is needed (its value); a user event's is large.
            case((events.type_name == "slot", events.data), else_=None).label("data"),
            case((events.type_name == "user", _channel_of(tracker)), else_=None).label("channel"),
        )
        .where(
            relevant,
            events.timestamp >= since,
            events.timestamp < until,
            ~events.sender_id.startswith(STAFF_CONVERSATION_PREFIX, autoescape=True),
        )
        .order_by(events.sender_id, events.id)
    )
    yield from tracker.execution_options(yield_per=_STREAM_ROWS).execute(statement)


def _conversations(tracker: Engine | None, period: Period) -> dict[str, _Conversation]:
    """Each conversation with a user message in the period, its turns and whether it was resolved."""
    if tracker is None:
        return {}
    since = _real_epoch(_day_start(period.start))
    until = _real_epoch(_day_start(period.end + timedelta(days=1)))
    found: dict[str, _Conversation] = {}
    with tracker.connect() as connection:
        if not inspect(connection).has_table(TRACKER_EVENTS.name):
            return {}
        sender: str | None = None
        current = _Conversation()
        turn_open = False  # a user turn seen, its fallback not counted yet
        for row in _events(connection, since, until):
            if row.sender_id != sender:
                sender, current, turn_open = row.sender_id, _Conversation(), False
            if row.type_name == "user":
                if not current.user_turns:
                    current.channel = row.channel or DEFAULT_CHANNEL
                current.user_turns += 1
                found[row.sender_id] = current
                turn_open = True
            elif row.type_name == "action" and row.action_name in FALLBACK_ACTIONS:
                if turn_open:
                    current.fallback_turns += 1
                    turn_open = False
            elif row.type_name == "action":
                current.resolved = True
            elif row.action_name == FAQ_ANSWER_SLOT:
                current.resolved = current.resolved or bool(_slot_value(row.data))
            else:
                current.customer_id = _slot_value(row.data) or current.customer_id
    return found


def _chunks(values: Collection[str]) -> Iterable[list[str]]:
    items = sorted(values)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _customers_in_scope(session: Session, actor: Actor, customer_ids: Collection[str]) -> set[str]:
    visible: set[str] = set()
    for chunk in _chunks(customer_ids):
        visible.update(
            session.scalars(
                select(Customer.customer_id).where(Customer.customer_id.in_(chunk), customer_scope(actor))
            )
        )
    return visible


def _in_scope(actor: Actor, customer_id: SQLColumnExpression[Any]) -> ColumnElement[bool]:
    """A condition keeping rows whose customer the actor sees (every row for whoever sees everyone)."""
    if _sees_everyone(actor):
        return true()
    return customer_id.in_(select(Customer.customer_id).where(customer_scope(actor)))


def service_metrics(
    session: Session, tracker: Engine | None, actor: Actor, *, period: Period
) -> ServiceMetrics:
    """The service figures of `period` (CRM days) in the actor's scope.

    Args:
        session: The CRM store (hand-off cases, ratings, the outbox); nothing is written.
        tracker: Rasa's tracker store (`tracker_engine()`), None when there is none yet.
        actor: A manager or an admin.

    Raises:
        Forbidden: Not staff ("staff_only"), or staff other than a manager or admin ("role_not_allowed").
    """
    require_role(actor, "manager", "admin")
    since, until = _day_start(period.start), _day_start(period.end + timedelta(days=1))
    conversations = _conversations(tracker, period)
    handed_off: dict[str, str | None] = {
        sender: customer
        for sender, customer in session.execute(
            select(HandoffCase.sender_id, HandoffCase.customer_id).where(
                HandoffCase.opened_at >= since, HandoffCase.opened_at < until
            )
        )
        if sender in conversations
    }
    for sender, customer in handed_off.items():
        conversations[sender].customer_id = conversations[sender].customer_id or customer
    if not _sees_everyone(actor):
        owners = {c.customer_id for c in conversations.values() if c.customer_id}
        visible = _customers_in_scope(session, actor, owners)
        conversations = {s: c for s, c in conversations.items() if c.customer_id in visible}

    tickets = csat_average(session, actor, start=period.start, end=period.end)
    case_ratings, case_average = session.execute(
        select(func.count(), func.avg(HandoffCase.rating)).where(
            HandoffCase.rating.is_not(None),
            HandoffCase.rated_at >= since,
            HandoffCase.rated_at < until,
            _in_scope(actor, HandoffCase.customer_id),
        )
    ).one()
    case_ratings = int(case_ratings or 0)
    ratings = tickets.rated + case_ratings
    rating_sum = (tickets.average or 0.0) * tickets.rated + float(case_average or 0.0) * case_ratings

    sent, failed = session.execute(
        select(
            func.count().filter(Outbox.status == OUTBOX_STATUS_SENT),
            func.count().filter(Outbox.status == OUTBOX_STATUS_FAILED),
        ).where(Outbox.created_at >= since, Outbox.created_at < until, _in_scope(actor, Outbox.customer_id))
    ).one()

    return ServiceMetrics(
        period=period,
        conversations=len(conversations),
        conversations_by_channel=dict(Counter(c.channel for c in conversations.values())),
        deflected_conversations=sum(
            1 for sender, c in conversations.items() if c.resolved and sender not in handed_off
        ),
        handoff_conversations=sum(1 for sender in conversations if sender in handed_off),
        user_turns=sum(c.user_turns for c in conversations.values()),
        fallback_turns=sum(c.fallback_turns for c in conversations.values()),
        csat_ratings=ratings,
        csat_average=rating_sum / ratings if ratings else None,
        care_sent=int(sent or 0),
        care_failed=int(failed or 0),
    )
