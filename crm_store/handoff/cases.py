"""Hand-off cases: opening, the transcript, staff messages waiting for delivery, closing, rating.

Every time of a case comes from the CRM clock: times the caller gives (`now`) are CRM times, and
the transcript's times, real instants of the chat, are placed on the CRM's calendar
(`crm_store.clock.crm_time`), so a case opened on a pinned day has its transcript on that day.

`add_staff_reply`, `add_customer_message` and `close_handoff` lock the case for the caller's
transaction (a reply cannot race a close) and refuse a case that is not open.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.complaints import check_rating
from crm_store.errors import Conflict, Invalid, NotFound
from crm_store.ids import begin_write
from crm_store.models import AuditLog, Customer, Employee, HandoffCase, HandoffMessage, Ticket
from crm_store.privacy import conversation_key
from crm_store.service_hours import next_service_time
from crm_store.vocab import (
    HANDOFF_MESSAGE_CLOSING,
    HANDOFF_MESSAGE_REPLY,
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
    """A staff message of a case; `delivered_at` is None until the chat has shown it to the customer.

    `kind` is "reply", or "closing" for the closing words queued by `close_handoff`.
    """

    id: int
    case_id: int
    text: str
    created_at: datetime
    delivered_at: datetime | None
    kind: str = HANDOFF_MESSAGE_REPLY


def _entry(who: str, text: str, at: datetime) -> dict[str, Any]:
    if who not in TRANSCRIPT_SPEAKERS:
        raise Invalid("transcript_speaker_unknown", field="transcript")
    return {"who": who, "text": text[:TEXT_MAX_CHARS], "at": at.astimezone(clock.TZ).isoformat()}


def _parse_at(value: object, default: datetime) -> datetime:
    """A transcript time: a real instant placed on the CRM calendar, or `default` if unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return default
    else:
        return default
    return clock.crm_time(moment if moment.tzinfo is not None else moment.replace(tzinfo=clock.TZ))


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
        raise NotFound("handoff_not_found", case_id=case_id)
    return case


def _locked_open_case(session: Session, case_id: int) -> HandoffCase:
    """The case, locked for the caller's transaction, if it is still open.

    On SQLite the write lock is taken before the read, so that the state read cannot change under
    the caller (a close racing a reply); on PostgreSQL the row lock does that.

    Raises:
        NotFound: "handoff_not_found".
        Conflict: "handoff_closed".
    """
    begin_write(session, HandoffCase)
    case = session.get(HandoffCase, case_id, with_for_update=True, populate_existing=True)
    if case is None:
        raise NotFound("handoff_not_found", case_id=case_id)
    if case.status != HANDOFF_STATUS_OPEN:
        raise Conflict("handoff_closed", case_id=case_id)
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
        transcript: The conversation so far, oldest first: {"who", "text", "at"} mappings. "at" is
            when it was said, a real instant (an aware datetime or ISO 8601 text; naive means
            Beijing time), placed on the CRM calendar with `clock.crm_time`; a missing or
            unreadable one becomes `now`. Only the last `TRANSCRIPT_MAX_ENTRIES` are kept.
        now: The current time; the CRM clock by default.

    Raises:
        Invalid: Unknown reason ("handoff_reason_unknown") or speaker ("transcript_speaker_unknown").
        NotFound: The customer ("customer_not_found") or the ticket ("ticket_not_found").
    """
    if reason not in HANDOFF_REASONS:
        raise Invalid("handoff_reason_unknown", field="reason")
    if customer_id is not None and session.get(Customer, customer_id) is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    if ticket_id is not None and session.get(Ticket, ticket_id) is None:
        raise NotFound("ticket_not_found", ticket_id=ticket_id)
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
    """Add what the customer wrote while the bot is paused to the case's transcript (locks the case).

    Raises:
        NotFound: No such case ("handoff_not_found").
        Conflict: The case is closed ("handoff_closed").
    """
    case = _locked_open_case(session, case_id)
    _append(case, _entry("customer", text, now if now is not None else clock.now()))
    session.flush()


def _reply_view(message: HandoffMessage) -> StaffReply:
    return StaffReply(
        id=message.id,
        case_id=message.case_id,
        text=message.text,
        created_at=message.created_at.astimezone(clock.TZ),
        delivered_at=message.delivered_at.astimezone(clock.TZ) if message.delivered_at else None,
        kind=message.kind,
    )


def _queue_staff_message(
    session: Session, case: HandoffCase, *, text: str, kind: str, staff_id: str | None, moment: datetime
) -> HandoffMessage:
    message = HandoffMessage(case_id=case.id, staff_id=staff_id, kind=kind, text=text, created_at=moment)
    session.add(message)
    _append(case, _entry("staff", text, moment))
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
    return message


def add_staff_reply(
    session: Session, *, case_id: int, text: str, staff_id: str | None, now: datetime | None = None
) -> StaffReply:
    """Queue a staff reply for the customer and add it to the transcript (locks the case).

    `staff_id` is the signed-in employee who replies (None only for a reply the system sends);
    the audit row names them.

    Raises:
        Invalid: Empty ("reply_empty") or too long ("reply_too_long", with `limit`) text.
        NotFound: No such case ("handoff_not_found") or employee ("employee_not_found").
        Conflict: The case is closed ("handoff_closed").
    """
    body = text.strip()
    if not body:
        raise Invalid("reply_empty", field="text")
    if len(body) > TEXT_MAX_CHARS:
        raise Invalid("reply_too_long", field="text", limit=TEXT_MAX_CHARS)
    case = _locked_open_case(session, case_id)
    if staff_id is not None and session.get(Employee, staff_id) is None:
        raise NotFound("employee_not_found", employee_id=staff_id)
    moment = now if now is not None else clock.now()
    message = _queue_staff_message(
        session, case, text=body, kind=HANDOFF_MESSAGE_REPLY, staff_id=staff_id, moment=moment
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


def conversations_awaiting_replies(session: Session, *, prefix: str, limit: int = 100) -> list[str]:
    """Conversations whose id starts with `prefix` that have staff replies not yet delivered, the
    longest waiting first: for channels whose customer does not poll (WeChat), which push them."""
    stmt = (
        select(HandoffCase.sender_id)
        .join(HandoffMessage, HandoffMessage.case_id == HandoffCase.id)
        .where(
            HandoffCase.sender_id.startswith(prefix, autoescape=True),
            HandoffMessage.delivered_at.is_(None),
        )
        .group_by(HandoffCase.sender_id)
        .order_by(func.min(HandoffMessage.id))
        .limit(limit)
    )
    return list(session.scalars(stmt))


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
    session: Session,
    *,
    case_id: int,
    staff_id: str | None = None,
    closing_text: str | None = None,
    now: datetime | None = None,
) -> HandoffCaseView:
    """Close the case (locking it), which gives the conversation back to the bot.

    Args:
        session: An open session; the caller commits.
        case_id: The case.
        staff_id: Who closed it, for the audit row (None: the system).
        closing_text: The closing words, queued as the case's last staff message (kind "closing",
            the chat delivers it with the 1–5 rating buttons while the case is unrated) and added
            to the transcript; None queues nothing.
        now: The current time; the CRM clock by default.

    Raises:
        NotFound: No such case ("handoff_not_found").
        Conflict: The case is already closed ("handoff_closed"): the closing words go out once.
    """
    case = _locked_open_case(session, case_id)
    moment = now if now is not None else clock.now()
    if closing_text is not None:
        _queue_staff_message(
            session, case, text=closing_text, kind=HANDOFF_MESSAGE_CLOSING, staff_id=staff_id, moment=moment
        )
    case.status = HANDOFF_STATUS_CLOSED
    case.closed_at = moment
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
        Invalid: The rating is not 1 to 5 ("rating_out_of_range").
        NotFound: No such case ("handoff_not_found").
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
