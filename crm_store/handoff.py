"""Hand-off of a conversation to a person: cases, their transcript, staff replies waiting for delivery.

While a conversation has an open case the bot stays silent for it (the chat layer asks
`open_case_for`); staff read the case and its transcript, reply with `add_staff_reply`, and the chat
delivers `pending_replies` to the customer. Closing the case gives the conversation back to the bot.
Outside `SERVICE_HOURS` the customer is told when someone will answer (`next_service_time`).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.complaints import check_rating
from crm_store.ids import begin_write
from crm_store.models import AuditLog, Customer, Employee, HandoffCase, HandoffMessage, Ticket
from crm_store.privacy import conversation_key
from crm_store.service_hours import next_service_time
from crm_store.vocab import (
    HANDOFF_REASONS,
    HANDOFF_STATUS_CLOSED,
    HANDOFF_STATUS_OPEN,
    TRANSCRIPT_SPEAKERS,
)

TRANSCRIPT_MAX_ENTRIES: Final = 200
"""A case keeps at most this many transcript entries, the latest ones: enough context, bounded size."""

TEXT_MAX_CHARS: Final = 2000
"""Longest transcript entry or staff reply; a longer transcript entry is cut, a longer reply refused."""


@dataclass(frozen=True)
class TranscriptEntry:
    """One line of a hand-off transcript: who said it ("customer", "bot", "staff"), what, and when."""

    who: str
    text: str
    at: datetime


@dataclass(frozen=True)
class HandoffCaseView:
    """A hand-off case as staff see it. `sender_id` is the conversation it pauses."""

    id: int
    sender_id: str
    customer_id: str | None
    ticket_id: str | None
    reason: str
    status: str
    transcript: tuple[TranscriptEntry, ...]
    opened_at: datetime
    closed_at: datetime | None
    rating: int | None

    @property
    def is_open(self) -> bool:
        """True while the bot is paused for the conversation."""
        return self.status == HANDOFF_STATUS_OPEN


@dataclass(frozen=True)
class HandoffOpening:
    """The result of `open_handoff`: the case, whether it is new, and when a person will answer.

    `answer_from` is None within service hours, otherwise the next opening time (Beijing time).
    """

    case: HandoffCaseView
    created: bool
    answer_from: datetime | None


@dataclass(frozen=True)
class StaffReply:
    """A staff reply of a case; `delivered_at` is None until the chat has shown it to the customer."""

    id: int
    case_id: int
    text: str
    created_at: datetime
    delivered_at: datetime | None


def _entry(who: str, text: str, at: datetime) -> dict[str, Any]:
    if who not in TRANSCRIPT_SPEAKERS:
        raise ValueError(f"未知的发言方：{who}")
    return {"who": who, "text": text[:TEXT_MAX_CHARS], "at": at.astimezone(clock.TZ).isoformat()}


def _parse_at(value: object, default: datetime) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return default
    else:
        return default
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=clock.TZ)


def _entries(transcript: Iterable[Mapping[str, Any]], default_at: datetime) -> list[dict[str, Any]]:
    entries = [
        _entry(str(item.get("who", "")), str(item.get("text", "")), _parse_at(item.get("at"), default_at))
        for item in transcript
    ]
    return entries[-TRANSCRIPT_MAX_ENTRIES:]


def _view(case: HandoffCase) -> HandoffCaseView:
    return HandoffCaseView(
        id=case.id,
        sender_id=case.sender_id,
        customer_id=case.customer_id,
        ticket_id=case.ticket_id,
        reason=case.reason,
        status=case.status,
        transcript=tuple(
            TranscriptEntry(who=e["who"], text=e["text"], at=datetime.fromisoformat(e["at"]))
            for e in case.transcript
        ),
        opened_at=case.opened_at.astimezone(clock.TZ),
        closed_at=case.closed_at.astimezone(clock.TZ) if case.closed_at is not None else None,
        rating=case.rating,
    )


def _open_case(session: Session, conversation: str) -> HandoffCase | None:
    return session.scalar(
        select(HandoffCase).where(
            HandoffCase.sender_id == conversation, HandoffCase.status == HANDOFF_STATUS_OPEN
        )
    )


def _case(session: Session, case_id: int) -> HandoffCase:
    case = session.get(HandoffCase, case_id)
    if case is None:
        raise LookupError(f"转人工会话 {case_id} 不存在")
    return case


def open_handoff(
    session: Session,
    *,
    conversation: str,
    reason: str,
    customer_id: str | None = None,
    ticket_id: str | None = None,
    transcript: Sequence[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> HandoffOpening:
    """Open a hand-off case for the conversation, or return the one already open.

    Idempotent: one open case per conversation, even under concurrent calls. An existing case keeps
    its reason and transcript; only a missing customer or ticket link is filled in.

    Args:
        session: An open session; the caller commits.
        conversation: The chat's sender id, kept in clear to resume the conversation.
        reason: One of `HANDOFF_REASONS` (客户要求, 连续未理解, 高优先级投诉).
        customer_id: The verified customer, if any.
        ticket_id: The ticket that caused it, if any.
        transcript: The conversation so far, oldest first: {"who", "text", "at"} mappings; a
            missing or unreadable "at" becomes `now`. Only the last `TRANSCRIPT_MAX_ENTRIES` are kept.
        now: The current time; the CRM clock by default.

    Raises:
        ValueError: Unknown reason or speaker.
        LookupError: The customer or the ticket does not exist.
    """
    if reason not in HANDOFF_REASONS:
        raise ValueError(f"未知的转人工原因：{reason}")
    if customer_id is not None and session.get(Customer, customer_id) is None:
        raise LookupError(f"客户 {customer_id} 不存在")
    if ticket_id is not None and session.get(Ticket, ticket_id) is None:
        raise LookupError(f"工单 {ticket_id} 不存在")
    moment = now if now is not None else clock.now()
    entries = _entries(transcript, moment)

    created = False
    case = _open_case(session, conversation)
    if case is None:
        begin_write(session, HandoffCase)
        try:
            with session.begin_nested():
                case = HandoffCase(
                    sender_id=conversation,
                    customer_id=customer_id,
                    ticket_id=ticket_id,
                    reason=reason,
                    status=HANDOFF_STATUS_OPEN,
                    transcript=entries,
                    opened_at=moment,
                )
                session.add(case)
            created = True
        except IntegrityError:
            # A concurrent request opened it first (the partial unique index said so): use that one.
            case = _open_case(session, conversation)
            if case is None:
                raise
    if not created:
        case.customer_id = case.customer_id or customer_id
        case.ticket_id = case.ticket_id or ticket_id
    else:
        session.add(
            AuditLog(
                actor_role="customer",
                actor_id=conversation_key(conversation),
                action="open_handoff",
                entity="handoff_case",
                entity_id=str(case.id),
                detail={"reason": reason, "customer_id": customer_id, "ticket_id": ticket_id},
            )
        )
    session.flush()
    return HandoffOpening(case=_view(case), created=created, answer_from=next_service_time(moment))


def open_case_for(session: Session, *, conversation: str) -> HandoffCaseView | None:
    """The open case of the conversation (the bot must stay silent), or None."""
    case = _open_case(session, conversation)
    return _view(case) if case is not None else None


def get_handoff(session: Session, *, case_id: int) -> HandoffCaseView | None:
    """A case by id, open or closed, or None."""
    case = session.get(HandoffCase, case_id)
    return _view(case) if case is not None else None


def list_open_handoffs(session: Session) -> list[HandoffCaseView]:
    """The open cases, the longest waiting first."""
    stmt = (
        select(HandoffCase)
        .where(HandoffCase.status == HANDOFF_STATUS_OPEN)
        .order_by(HandoffCase.opened_at, HandoffCase.id)
    )
    return [_view(case) for case in session.scalars(stmt)]


def _append(case: HandoffCase, entry: dict[str, Any]) -> None:
    # A new list, not an in-place append: the JSON column notices only reassignment.
    case.transcript = [*case.transcript, entry][-TRANSCRIPT_MAX_ENTRIES:]


def add_customer_message(session: Session, *, case_id: int, text: str, now: datetime | None = None) -> None:
    """Add what the customer wrote while the bot is paused to the case's transcript.

    Raises:
        LookupError: No such case.
        ValueError: The case is closed.
    """
    case = _case(session, case_id)
    if case.status != HANDOFF_STATUS_OPEN:
        raise ValueError("该转人工会话已结束")
    _append(case, _entry("customer", text, now if now is not None else clock.now()))
    session.flush()


def _reply_view(message: HandoffMessage) -> StaffReply:
    return StaffReply(
        id=message.id,
        case_id=message.case_id,
        text=message.text,
        created_at=message.created_at.astimezone(clock.TZ),
        delivered_at=message.delivered_at.astimezone(clock.TZ) if message.delivered_at else None,
    )


def add_staff_reply(
    session: Session, *, case_id: int, text: str, staff_id: str | None, now: datetime | None = None
) -> StaffReply:
    """Queue a staff reply for the customer and add it to the transcript.

    `staff_id` is the replying employee, or None while staff share one API token and so have no
    individual identity yet; the audit row then names no one.

    Raises:
        LookupError: No such case or employee.
        ValueError: Empty or too long text, or the case is closed.
    """
    body = text.strip()
    if not body:
        raise ValueError("回复内容不能为空")
    if len(body) > TEXT_MAX_CHARS:
        raise ValueError(f"回复内容过长（超过 {TEXT_MAX_CHARS} 字）")
    case = _case(session, case_id)
    if case.status != HANDOFF_STATUS_OPEN:
        raise ValueError("该转人工会话已结束，无法再回复")
    if staff_id is not None and session.get(Employee, staff_id) is None:
        raise LookupError(f"员工 {staff_id} 不存在")
    moment = now if now is not None else clock.now()
    message = HandoffMessage(case_id=case.id, staff_id=staff_id, text=body, created_at=moment)
    session.add(message)
    _append(case, _entry("staff", body, moment))
    session.add(
        AuditLog(
            actor_role="staff",
            actor_id=staff_id,
            action="handoff_reply",
            entity="handoff_case",
            entity_id=str(case.id),
            detail={},
        )
    )
    session.flush()
    return _reply_view(message)


def pending_replies(session: Session, *, conversation: str) -> list[StaffReply]:
    """Staff replies not yet delivered to this conversation, oldest first.

    Replies of a case closed since are included: a last word before closing must still arrive.
    """
    stmt = (
        select(HandoffMessage)
        .join(HandoffCase, HandoffMessage.case_id == HandoffCase.id)
        .where(HandoffCase.sender_id == conversation, HandoffMessage.delivered_at.is_(None))
        .order_by(HandoffMessage.id)
    )
    return [_reply_view(message) for message in session.scalars(stmt)]


def mark_delivered(session: Session, *, reply_ids: Iterable[int], now: datetime | None = None) -> int:
    """Mark replies as shown to the customer; returns how many were pending (a repeat marks none)."""
    ids = sorted(set(reply_ids))
    if not ids:
        return 0
    result = session.execute(
        update(HandoffMessage)
        .where(HandoffMessage.id.in_(ids), HandoffMessage.delivered_at.is_(None))
        .values(delivered_at=now if now is not None else clock.now())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def close_handoff(
    session: Session, *, case_id: int, staff_id: str | None = None, now: datetime | None = None
) -> HandoffCaseView:
    """Close the case, which gives the conversation back to the bot; closing again changes nothing.

    Raises:
        LookupError: No such case.
    """
    case = _case(session, case_id)
    if case.status == HANDOFF_STATUS_OPEN:
        case.status = HANDOFF_STATUS_CLOSED
        case.closed_at = now if now is not None else clock.now()
        session.add(
            AuditLog(
                actor_role="staff" if staff_id is not None else "system",
                actor_id=staff_id,
                action="close_handoff",
                entity="handoff_case",
                entity_id=str(case.id),
                detail={},
            )
        )
        session.flush()
    return _view(case)


def rate_handoff(session: Session, *, case_id: int, rating: int, now: datetime | None = None) -> None:
    """Store the customer's satisfaction rating (1–5) on the case; a later rating replaces it.

    Raises:
        ValueError: The rating is not 1 to 5.
        LookupError: No such case.
    """
    value = check_rating(rating)
    case = _case(session, case_id)
    case.rating = value
    case.rated_at = now if now is not None else clock.now()
    session.flush()


def unrated_closed_case(session: Session, *, conversation: str) -> int | None:
    """The conversation's most recently closed case still waiting for a rating, if any.

    The rating buttons shown when a case closes come back to the bot as an ordinary message, so
    the bot finds what they rate here rather than remembering it.
    """
    return session.scalar(
        select(HandoffCase.id)
        .where(
            HandoffCase.sender_id == conversation,
            HandoffCase.status == HANDOFF_STATUS_CLOSED,
            HandoffCase.rating.is_(None),
        )
        .order_by(HandoffCase.closed_at.desc(), HandoffCase.id.desc())
        .limit(1)
    )
