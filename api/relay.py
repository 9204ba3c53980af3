"""The customer's side of a hand-off: keep a paused conversation away from Rasa, relay staff replies.

While the conversation has an open hand-off case (opened by the bot, `actions/handoff.py`), what
the customer writes goes into the case's transcript instead of to Rasa, and the answer is the
staff replies waiting for them, or `HOLDING_REPLY`. Staff replies also arrive by polling
(`GET /api/chat/updates`). Each reply is claimed row by row (`mark_delivered` of one id answers 1
only to the request that delivered it), so a reply is shown exactly once even when a poll and a
chat turn race.

Closing a case queues `CLOSING_TEXT` as the case's last staff reply; whoever delivers it attaches
the 1–5 rating buttons, whose payload goes through `/api/chat` to Rasa's rating action.

Everything here is synchronous SQLAlchemy: call it from a worker thread.
"""

from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from crm_store.handoff import (
    StaffReply,
    add_customer_message,
    get_handoff,
    mark_delivered,
    open_case_for,
    pending_replies,
)
from crm_store.ids import begin_write
from crm_store.models import HandoffCase
from crm_store.vocab import HANDOFF_STATUS_CLOSED, HANDOFF_STATUS_OPEN

HOLDING_REPLY: Final = "已收到，人工客服会尽快回复您。"
"""The answer to a customer's message while a person has the conversation and has not replied yet."""

CLOSING_TEXT: Final = "本次人工服务已结束，感谢您的耐心。方便为这次服务打个分吗？"
"""The last staff reply of every closed case; delivered with `rating_buttons()` while the case is unrated."""

# The same buttons as the bot's `utter_ask_rating` (bot/domain/complaints.yml).
_RATING_TITLES: Final = ("5 分 非常满意", "4 分", "3 分", "2 分", "1 分 很不满意")


def rating_buttons() -> list[dict[str, str]]:
    """The 1–5 satisfaction buttons, best first; each sends `/rate{"rating":"N"}` back to the chat."""
    return [
        {"title": title, "payload": f'/rate{{"rating":"{5 - index}"}}'}
        for index, title in enumerate(_RATING_TITLES)
    ]


@dataclass(frozen=True)
class Relay:
    """What the hand-off layer did with a turn.

    `paused` is True when an open case holds the conversation: the customer's message was recorded
    in its transcript and must not reach Rasa. `messages` are bot messages (REST channel shape) to
    show the customer: delivered staff replies, or `HOLDING_REPLY`.
    """

    paused: bool
    messages: list[dict[str, Any]] = field(default_factory=list)


def _render(session: Session, sender: str, reply: StaffReply) -> dict[str, Any]:
    message: dict[str, Any] = {"recipient_id": sender, "text": reply.text}
    if reply.text == CLOSING_TEXT:
        case = get_handoff(session, case_id=reply.case_id)
        if case is not None and case.status == HANDOFF_STATUS_CLOSED and case.rating is None:
            message["buttons"] = rating_buttons()
    return message


def _claim_pending(session: Session, sender: str) -> list[dict[str, Any]]:
    claimed = [
        reply
        for reply in pending_replies(session, conversation=sender)
        if mark_delivered(session, reply_ids=[reply.id]) == 1
    ]
    return [_render(session, sender, reply) for reply in claimed]


def relay_turn(factory: sessionmaker[Session], *, sender: str, text: str | None) -> Relay:
    """Handle one chat turn (`text` is the cleaned message) or one poll (`text` None) of `sender`.

    A turn of a paused conversation is recorded in the open case and answered here; any other
    turn is left to Rasa, with the staff replies still waiting for the customer (a case closed
    since, say) to show before Rasa's answer. Only reads happen unless there is something to write.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The store failed; nothing was recorded or delivered.
    """
    with factory() as session:
        case = open_case_for(session, conversation=sender)
        waiting = bool(pending_replies(session, conversation=sender))
    record = text is not None and case is not None
    if not record and not waiting:
        return Relay(paused=False)

    paused = False
    with factory() as session:
        # Take SQLite's write lock before reading, so that the state read below cannot change
        # under us (a close racing this turn); on PostgreSQL the row lock does that.
        begin_write(session, HandoffCase)
        if record and case is not None:
            locked = session.get(HandoffCase, case.id, with_for_update=True)
            if locked is not None and locked.status == HANDOFF_STATUS_OPEN:
                add_customer_message(session, case_id=locked.id, text=text or "")
                paused = True
        messages = _claim_pending(session, sender)
        session.commit()
    if paused and not messages:
        messages = [{"recipient_id": sender, "text": HOLDING_REPLY}]
    return Relay(paused=paused, messages=messages)
