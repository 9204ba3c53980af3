"""The outbox of proactive care: queue a message exactly once, claim it, mark what became of it.

A message's life (statuses in `crm_store.vocab.OUTBOX_STATUSES`):

    enqueue ──▶ pending ──claim──▶ sending ──▶ sent
                  ▲  │                │  └──▶ pending again, later (a failure: backoff; quiet hours)
                  │  └─▶ skipped      └─────▶ failed (after `care_max_attempts` failures)
                  └── a claim older than `care_claim_lease_s` (its sender died) is claimed again

- **Exactly once.** `enqueue` inserts with `ON CONFLICT (dedupe_key) DO NOTHING` in the caller's
  transaction, the one that decided the message: a second decision of the same
  `(rule, subject, occasion, audience, channel)` is a no-op, whichever process makes it.
- **Claims.** `claim_due` moves due pending rows to `sending` in one short transaction: on
  PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so concurrent senders take different
  rows without waiting; on SQLite one conditional `UPDATE … RETURNING` does it under the database's
  write lock. Paused channels are not claimed.
- **Channels** keep a count of consecutive failures (`care_channels`); at
  `care_pause_after_failures` the channel is paused and stays so until `resume_channel`.
- **Inboxes.** Sent messages of channel `staff_inbox` (to an employee) and `web` (to a customer)
  are the inboxes the chat shows (`inbox`, `mark_read`).

Services flush; the caller commits. No function here logs or returns an address in an error.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.access import Actor
from crm_store.audit import audit
from crm_store.errors import Invalid, NotFound
from crm_store.models import CareChannel, Customer, Employee, Outbox, WechatLink
from crm_store.settings import CareSettings, get_care_settings
from crm_store.vocab import (
    CARE_AUDIENCE_CUSTOMER,
    CARE_AUDIENCE_STAFF,
    CARE_CHANNELS,
    CARE_STAFF_CHANNEL,
    CARE_WECOM_CHANNEL,
    OUTBOX_STATUS_FAILED,
    OUTBOX_STATUS_PENDING,
    OUTBOX_STATUS_SENDING,
    OUTBOX_STATUS_SENT,
    OUTBOX_STATUS_SKIPPED,
)

__all__ = [
    "CUSTOMER_INBOX_CHANNEL",
    "InboxMessage",
    "NewMessage",
    "OutboxMessage",
    "backoff_seconds",
    "care_status",
    "claim_due",
    "dedupe_key",
    "defer",
    "enqueue",
    "existing_keys",
    "inbox",
    "mark_failed",
    "mark_read",
    "mark_sent",
    "mark_skipped",
    "paused_channels",
    "record_channel_failure",
    "record_channel_success",
    "resume_channel",
]

CUSTOMER_INBOX_CHANNEL: Final = "web"
"""A customer's `channel_pref` of `web`: the message waits in the chat for the verified customer."""

_INSERT_CHUNK: Final = 500
_ERROR_CHARS: Final = 500


def dedupe_key(rule: str, subject: str, occasion: str, audience: str, channel: str) -> str:
    """`rule:subject:occasion:audience:channel`, e.g. `birthday:C0001:2026-11-25:staff:staff_inbox`."""
    return f"{rule}:{subject}:{occasion}:{audience}:{channel}"


@dataclass(frozen=True)
class NewMessage:
    """A message a rule decided to send, before it is queued.

    `status` is `pending`, or `skipped` with a `reason` when it must not go out (e.g. `opt_out`):
    a skipped decision is recorded too, so that it is reported once and never decided again.
    """

    rule: str
    audience: str
    customer_id: str | None
    employee_id: str | None
    channel: str
    text: str
    dedupe_key: str
    status: str = OUTBOX_STATUS_PENDING
    reason: str | None = None


@dataclass(frozen=True)
class OutboxMessage:
    """A claimed message with what its channel needs to deliver it.

    `address` is the e-mail address, phone number, WeChat openid or WeCom userid of the recipient
    for the channels that need one (None for inboxes); it is personal data and is never logged.
    `opt_out` is the customer's opt-out as it stands at claim time.
    """

    id: int
    rule: str
    audience: str
    customer_id: str | None
    employee_id: str | None
    channel: str
    text: str
    dedupe_key: str
    attempts: int
    recipient_name: str | None
    address: str | None
    opt_out: bool


@dataclass(frozen=True)
class InboxMessage:
    """A sent message in an inbox: the staff inbox of an employee or the web inbox of a customer."""

    id: int
    rule: str
    text: str
    customer_id: str | None
    employee_id: str | None
    sent_at: datetime | None
    read: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "text": self.text,
            "customer_id": self.customer_id,
            "employee_id": self.employee_id,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "read": self.read,
        }


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Outbox)
    if dialect == "sqlite":
        return sqlite.insert(Outbox)
    raise NotImplementedError(f"outbox inserts need PostgreSQL or SQLite, not {dialect}")  # programming error


def enqueue(session: Session, messages: Sequence[NewMessage], *, now: datetime) -> set[str]:
    """Queue messages, ignoring those whose `dedupe_key` is already queued (insert-or-ignore).

    Args:
        session: The session of the transaction that decided the messages (the caller commits).
        messages: The decisions; duplicates within the list are queued once.
        now: When they were decided (`created_at`).

    Returns:
        The dedupe keys actually inserted now: the messages that are new.
    """
    rows: dict[str, dict[str, Any]] = {}
    for message in messages:
        rows.setdefault(
            message.dedupe_key,
            {
                "customer_id": message.customer_id,
                "employee_id": message.employee_id,
                "channel": message.channel,
                "kind": message.rule,
                "body": message.text,
                "dedupe_key": message.dedupe_key,
                "status": message.status,
                "attempts": 0,
                "last_error": message.reason,
                "created_at": now,
            },
        )
    values = list(rows.values())
    inserted: set[str] = set()
    for start in range(0, len(values), _INSERT_CHUNK):
        chunk = values[start : start + _INSERT_CHUNK]
        statement = (
            _insert(session)
            .values(chunk)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(Outbox.dedupe_key)
        )
        inserted.update(session.scalars(statement).all())
    session.flush()
    return inserted


def existing_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """Which of `keys` are queued already (for a dry run, which queues nothing)."""
    found: set[str] = set()
    unique = sorted(set(keys))
    for start in range(0, len(unique), _INSERT_CHUNK):
        chunk = unique[start : start + _INSERT_CHUNK]
        found.update(session.scalars(select(Outbox.dedupe_key).where(Outbox.dedupe_key.in_(chunk))))
    return found


def paused_channels(session: Session) -> set[str]:
    """The channels paused after too many consecutive failures."""
    return set(session.scalars(select(CareChannel.channel).where(CareChannel.paused.is_(True))))


def _due_condition(now: datetime, lease_s: float, paused: set[str]) -> ColumnElement[bool]:
    pending = and_(
        Outbox.status == OUTBOX_STATUS_PENDING,
        or_(Outbox.next_attempt_at.is_(None), Outbox.next_attempt_at <= now),
    )
    abandoned = and_(
        Outbox.status == OUTBOX_STATUS_SENDING,
        Outbox.claimed_at < now - timedelta(seconds=lease_s),
    )
    due = or_(pending, abandoned)
    if paused:
        due = and_(due, Outbox.channel.not_in(sorted(paused)))
    return due


# The WeChat follower a customer's WeChat message goes to: the one linked last (a customer may follow
# the account from more than one WeChat account).
_latest_follower = (
    select(WechatLink.openid)
    .where(WechatLink.customer_id == Outbox.customer_id)
    .order_by(WechatLink.linked_at.desc(), WechatLink.openid)
    .limit(1)
    .correlate(Outbox)
    .scalar_subquery()
    .label("follower")
)


def claim_due(
    session: Session, *, now: datetime, limit: int, settings: CareSettings | None = None
) -> list[OutboxMessage]:
    """Claim up to `limit` due messages (oldest first) for this sender: status `sending`.

    Due: pending and not held until later, or claimed longer than `care_claim_lease_s` ago by a
    sender that never finished; never on a paused channel. The caller commits at once, so that other
    senders see the claim, then delivers and marks each message.
    """
    config = settings if settings is not None else get_care_settings()
    due = _due_condition(now, config.care_claim_lease_s, paused_channels(session))
    if session.get_bind().dialect.name == "postgresql":
        ids = list(
            session.scalars(
                select(Outbox.id)
                .where(due)
                .order_by(Outbox.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            session.execute(
                update(Outbox)
                .where(Outbox.id.in_(ids))
                .values(status=OUTBOX_STATUS_SENDING, claimed_at=now)
                .execution_options(synchronize_session=False)
            )
    else:
        # One statement under SQLite's write lock: the condition is checked and the claim made at once.
        picked = select(Outbox.id).where(due).order_by(Outbox.id).limit(limit).scalar_subquery()
        ids = list(
            session.scalars(
                update(Outbox)
                .where(Outbox.id.in_(picked), due)
                .values(status=OUTBOX_STATUS_SENDING, claimed_at=now)
                .returning(Outbox.id)
                .execution_options(synchronize_session=False)
            )
        )
    session.flush()
    if not ids:
        return []
    rows = session.execute(
        select(Outbox, Customer, Employee, _latest_follower)
        .outerjoin(Customer, Customer.customer_id == Outbox.customer_id)
        .outerjoin(Employee, Employee.employee_id == Outbox.employee_id)
        .where(Outbox.id.in_(ids))
        .order_by(Outbox.id)
    ).all()
    return [_claimed(row, customer, employee, follower) for row, customer, employee, follower in rows]


def _claimed(
    row: Outbox, customer: Customer | None, employee: Employee | None, follower: str | None
) -> OutboxMessage:
    staff = row.employee_id is not None
    if staff:
        name = employee.name if employee is not None else None
        address = None
        if employee is not None and row.channel == "email":
            address = employee.email
        elif employee is not None and row.channel == CARE_WECOM_CHANNEL:
            address = employee.wecom_userid
    else:
        name = customer.name if customer is not None else None
        address = None
        if customer is not None and row.channel == "email":
            address = customer.email
        elif customer is not None and row.channel == "sms":
            address = customer.phone
        elif customer is not None and row.channel == "wechat":
            address = follower
    return OutboxMessage(
        id=row.id,
        rule=row.kind,
        audience=CARE_AUDIENCE_STAFF if staff else CARE_AUDIENCE_CUSTOMER,
        customer_id=row.customer_id,
        employee_id=row.employee_id,
        channel=row.channel,
        text=row.body,
        dedupe_key=row.dedupe_key,
        attempts=row.attempts,
        recipient_name=name,
        address=address,
        opt_out=bool(customer.opt_out) if customer is not None and not staff else False,
    )


def _claimed_row(session: Session, message_id: int) -> Outbox:
    row = session.get(Outbox, message_id)
    if row is None:
        raise NotFound("outbox_message_not_found", message_id=message_id)
    return row


def mark_sent(session: Session, message_id: int, *, now: datetime) -> None:
    """The message was delivered: status `sent`, `sent_at` now."""
    row = _claimed_row(session, message_id)
    row.status = OUTBOX_STATUS_SENT
    row.sent_at = now
    row.claimed_at = None
    row.last_error = None
    session.flush()


def mark_skipped(session: Session, message_id: int, *, reason: str) -> None:
    """The message must not go out (e.g. `opt_out`, `no_address`): status `skipped`, the reason kept."""
    row = _claimed_row(session, message_id)
    row.status = OUTBOX_STATUS_SKIPPED
    row.last_error = reason
    row.claimed_at = None
    session.flush()


def defer(session: Session, message_id: int, *, until: datetime, reason: str | None = None) -> None:
    """Put a claimed message back, not to be sent before `until` (quiet hours); no attempt counted."""
    row = _claimed_row(session, message_id)
    row.status = OUTBOX_STATUS_PENDING
    row.next_attempt_at = until
    row.claimed_at = None
    if reason is not None:
        row.last_error = reason
    session.flush()


def backoff_seconds(attempts: int, settings: CareSettings) -> float:
    """The wait after the `attempts`-th failure: base × 2^(attempts−1), at most `care_retry_max_s`."""
    exponent = max(attempts - 1, 0)
    return float(min(settings.care_retry_max_s, settings.care_retry_base_s * (2 ** min(exponent, 30))))


def mark_failed(
    session: Session, message_id: int, *, now: datetime, error: str, settings: CareSettings | None = None
) -> bool:
    """Count a failed delivery: retried after a backoff, or `failed` after `care_max_attempts`.

    Args:
        error: A short reason code or message, without personal data (it is stored and shown).

    Returns:
        True when the message will be retried, False when it is given up (status `failed`).
    """
    config = settings if settings is not None else get_care_settings()
    row = _claimed_row(session, message_id)
    row.attempts = (row.attempts or 0) + 1
    row.last_error = error[:_ERROR_CHARS]
    row.claimed_at = None
    if row.attempts >= config.care_max_attempts:
        row.status = OUTBOX_STATUS_FAILED
        session.flush()
        return False
    row.status = OUTBOX_STATUS_PENDING
    row.next_attempt_at = now + timedelta(seconds=backoff_seconds(row.attempts, config))
    session.flush()
    return True


def _channel_row(session: Session, channel: str) -> CareChannel:
    dialect = session.get_bind().dialect.name
    table_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        table_insert(CareChannel)
        .values(channel=channel, consecutive_failures=0, paused=False)
        .on_conflict_do_nothing(index_elements=["channel"])
    )
    row = session.get(CareChannel, channel, with_for_update=True, populate_existing=True)
    if row is None:  # inserted just above
        raise NotFound("care_channel_not_found", channel=channel)
    return row


def record_channel_success(session: Session, channel: str) -> None:
    """A delivery on `channel` worked: its run of failures ends."""
    row = session.get(CareChannel, channel)
    if row is not None and (row.consecutive_failures or row.last_error):
        row = _channel_row(session, channel)
        row.consecutive_failures = 0
        row.last_error = None
        session.flush()


def record_channel_failure(
    session: Session, channel: str, *, error: str, settings: CareSettings | None = None
) -> bool:
    """A delivery on `channel` failed; pause it after `care_pause_after_failures` in a row (audited).

    Returns:
        True when this failure paused the channel.
    """
    config = settings if settings is not None else get_care_settings()
    row = _channel_row(session, channel)
    row.consecutive_failures += 1
    row.last_error = error[:_ERROR_CHARS]
    paused_now = not row.paused and row.consecutive_failures >= config.care_pause_after_failures
    if paused_now:
        row.paused = True
        audit(
            session,
            Actor(role="system", employee_id=None),
            "pause_care_channel",
            entity="care_channel",
            entity_id=channel,
            consecutive_failures=row.consecutive_failures,
        )
    session.flush()
    return paused_now


def resume_channel(session: Session, channel: str, *, actor: Actor) -> bool:
    """Resume a paused channel: its waiting messages go out at the next pass. Audited.

    Returns:
        True when the channel was paused.

    Raises:
        Invalid: `channel` is not a care channel ("channel_unknown").
    """
    if channel not in CARE_CHANNELS:
        raise Invalid("channel_unknown", field="channel", channel=channel)
    row = session.get(CareChannel, channel, with_for_update=True)
    if row is None or not row.paused:
        return False
    row.paused = False
    row.consecutive_failures = 0
    audit(session, actor, "resume_care_channel", entity="care_channel", entity_id=channel)
    session.flush()
    return True


def care_status(session: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """Counts of the outbox by status and the health of each channel.

    `pending` counts messages ready to go, `deferred` those held until later (quiet hours, a
    retry's backoff), `sending` those claimed by a sender now.

    Returns:
        `{"pending", "deferred", "sending", "sent", "failed", "skipped": int,
          "channels": [{"channel", "consecutive_failures", "paused", "last_error"}]}`
    """
    moment = now if now is not None else clock.now()
    held = and_(Outbox.next_attempt_at.is_not(None), Outbox.next_attempt_at > moment)
    counts = {
        "pending": 0,
        "deferred": 0,
        "sending": 0,
        OUTBOX_STATUS_SENT: 0,
        OUTBOX_STATUS_FAILED: 0,
        OUTBOX_STATUS_SKIPPED: 0,
    }
    rows = session.execute(
        select(Outbox.status, held.label("held"), func.count()).group_by(Outbox.status, held)
    ).all()
    for status, is_held, count in rows:
        if status == OUTBOX_STATUS_PENDING and is_held:
            counts["deferred"] += count
        elif status in counts:
            counts[status] += count
    channels = [
        {
            "channel": row.channel,
            "consecutive_failures": row.consecutive_failures,
            "paused": bool(row.paused),
            "last_error": row.last_error,
        }
        for row in session.scalars(select(CareChannel).order_by(CareChannel.channel))
    ]
    return {**counts, "channels": channels}


def _inbox_owner(employee_id: str | None, customer_id: str | None) -> ColumnElement[bool]:
    if (employee_id is None) == (customer_id is None):
        raise Invalid("inbox_owner_required", field="employee_id")
    if employee_id is not None:
        return and_(Outbox.employee_id == employee_id, Outbox.channel == CARE_STAFF_CHANNEL)
    return and_(
        Outbox.customer_id == customer_id,
        Outbox.employee_id.is_(None),
        Outbox.channel == CUSTOMER_INBOX_CHANNEL,
    )


def inbox(
    session: Session,
    *,
    employee_id: str | None = None,
    customer_id: str | None = None,
    since_id: int = 0,
    sent_since: datetime | None = None,
    limit: int = 20,
    unread_only: bool = False,
) -> list[InboxMessage]:
    """The latest sent messages of an employee's staff inbox or a customer's web inbox, newest last.

    Args:
        employee_id: The employee whose staff inbox (channel `staff_inbox`) to read; or
        customer_id: the customer whose web inbox (channel `web`, customer-facing) to read.
        since_id: Only messages with a larger id (what a poll has not seen yet).
        sent_since: Only messages sent at or after this moment.
        limit: At most this many, the newest.
        unread_only: Only messages not marked read.

    Raises:
        Invalid: Neither or both of `employee_id` and `customer_id` ("inbox_owner_required").
    """
    condition = and_(
        _inbox_owner(employee_id, customer_id), Outbox.status == OUTBOX_STATUS_SENT, Outbox.id > since_id
    )
    if unread_only:
        condition = and_(condition, Outbox.read_at.is_(None))
    if sent_since is not None:
        condition = and_(condition, Outbox.sent_at >= sent_since)
    rows = session.scalars(select(Outbox).where(condition).order_by(Outbox.id.desc()).limit(limit)).all()
    return [
        InboxMessage(
            id=row.id,
            rule=row.kind,
            text=row.body,
            customer_id=row.customer_id,
            employee_id=row.employee_id,
            sent_at=row.sent_at,
            read=row.read_at is not None,
        )
        for row in reversed(rows)
    ]


def mark_read(
    session: Session,
    *,
    message_ids: Sequence[int],
    employee_id: str | None = None,
    customer_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Mark inbox messages read; only the owner's own messages are touched.

    Returns:
        How many messages were newly marked.

    Raises:
        Invalid: Neither or both of `employee_id` and `customer_id` ("inbox_owner_required").
    """
    owner = _inbox_owner(employee_id, customer_id)
    if not message_ids:
        return 0
    result = session.execute(
        update(Outbox)
        .where(owner, Outbox.id.in_(list(message_ids)), Outbox.read_at.is_(None))
        .values(read_at=now if now is not None else clock.now())
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)
