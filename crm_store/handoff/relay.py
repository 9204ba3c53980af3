"""The customer's side of an open hand-off: pause the conversation, record it, hand over staff messages.

While the conversation has an open case, what the customer writes goes into the case's transcript
instead of to the bot (`RelayTurn.paused`), and the turn is answered with the staff messages
waiting for the customer. Those are claimed row by row (`mark_delivered` of one id answers 1 only
to the request that delivered it), so a message is handed over exactly once even when a poll and
a chat turn race. The closing message of a case closed since, still unrated, is marked
`asks_rating`: the chat shows the 1–5 rating buttons with it.

What the customer sees is worded by the chat layer (the API, from the bot's domain responses):
this module decides, it does not speak.
"""

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from crm_store.errors import Conflict, NotFound
from crm_store.handoff.cases import (
    StaffReply,
    add_customer_message,
    get_handoff,
    mark_delivered,
    open_case_for,
    pending_replies,
)
from crm_store.ids import begin_write
from crm_store.models import HandoffCase
from crm_store.vocab import HANDOFF_MESSAGE_CLOSING, HANDOFF_STATUS_CLOSED


@dataclass(frozen=True)
class Delivery:
    """A staff message handed to the customer in this turn, and only in this one.

    `kind` is "reply" or "closing"; `asks_rating` is True for the closing message of a case that
    is closed and not rated yet.
    """

    case_id: int
    text: str
    kind: str
    asks_rating: bool


@dataclass(frozen=True)
class RelayTurn:
    """What the hand-off layer did with a turn.

    `paused` is True when an open case holds the conversation: the customer's message was recorded
    in its transcript and must not reach the bot. `deliveries` are the staff messages to show,
    oldest first; a paused turn without any is answered with a holding reply (`holding`).
    """

    paused: bool
    deliveries: tuple[Delivery, ...] = ()

    @property
    def holding(self) -> bool:
        """True when the customer should be told that a person will answer soon."""
        return self.paused and not self.deliveries


def _delivery(session: Session, reply: StaffReply) -> Delivery:
    asks_rating = False
    if reply.kind == HANDOFF_MESSAGE_CLOSING:
        case = get_handoff(session, case_id=reply.case_id)
        asks_rating = case is not None and case.status == HANDOFF_STATUS_CLOSED and case.rating is None
    return Delivery(case_id=reply.case_id, text=reply.text, kind=reply.kind, asks_rating=asks_rating)


def _claim_pending(session: Session, conversation: str) -> tuple[Delivery, ...]:
    claimed = [
        reply
        for reply in pending_replies(session, conversation=conversation)
        if mark_delivered(session, reply_ids=[reply.id]) == 1
    ]
    return tuple(_delivery(session, reply) for reply in claimed)


def relay_turn(sessions: sessionmaker[Session], *, conversation: str, text: str | None) -> RelayTurn:
    """Handle one chat turn (`text`, the cleaned message) or one poll (`text` None) of a conversation.

    A turn of a paused conversation is recorded in the open case; any other turn is left to the
    bot, with the staff messages still waiting for the customer (of a case closed since, say) to
    show before the bot's answer. Only reads happen unless there is something to write. The
    sessions are short and synchronous: call this from a worker thread in async code.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The store failed; nothing was recorded or delivered.
    """
    with sessions() as session:
        case = open_case_for(session, conversation=conversation)
        waiting = bool(pending_replies(session, conversation=conversation))
    record = text is not None and case is not None
    if not record and not waiting:
        return RelayTurn(paused=False)

    paused = False
    with sessions() as session:
        # The write lock first, so that what is read below cannot change under this turn.
        begin_write(session, HandoffCase)
        if record and case is not None:
            try:
                add_customer_message(session, case_id=case.id, text=text or "")
                paused = True
            except (Conflict, NotFound):
                pass  # closed (or removed) since the first look: the bot has the conversation again
        deliveries = _claim_pending(session, conversation)
        session.commit()
    return RelayTurn(paused=paused, deliveries=deliveries)
