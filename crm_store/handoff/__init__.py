"""Hand-off of a conversation to a person: the one service for both sides of it.

The bot opens a case (`open_handoff`). While it is open the bot stays silent for the conversation:
the chat layer passes every turn through `relay_turn`, which records the customer's messages in
the case and hands over the staff messages waiting for them, each exactly once. Staff read the
open cases (`list_open_handoffs`), reply (`add_staff_reply`) and close the case with its closing
words (`close_handoff`), which gives the conversation back to the bot and asks the customer for a
1–5 rating (`rate_handoff`, `unrated_closed_case`). Outside `SERVICE_HOURS` the customer is told
when someone will answer (`HandoffOpening.answer_from`).

| module  | what                                                                     |
|---------|--------------------------------------------------------------------------|
| `cases` | cases, their transcript, staff messages, closing and rating             |
| `relay` | one chat turn or poll of the customer while a person has the chat       |

A refusal raises a `crm_store.errors` class with a code: `NotFound` ("handoff_not_found",
"customer_not_found", "ticket_not_found", "employee_not_found"), `Conflict` ("handoff_closed")
and `Invalid` ("handoff_reason_unknown", "transcript_speaker_unknown", "reply_empty",
"reply_too_long", "rating_out_of_range"). Nothing here words a reply: the API and the bot do,
from the bot's domain responses.
"""

from crm_store.handoff.cases import (
    TEXT_MAX_CHARS,
    TRANSCRIPT_MAX_ENTRIES,
    HandoffCaseView,
    HandoffOpening,
    StaffReply,
    TranscriptEntry,
    add_customer_message,
    add_staff_reply,
    close_handoff,
    conversations_awaiting_replies,
    get_handoff,
    list_open_handoffs,
    mark_delivered,
    open_case_for,
    open_handoff,
    pending_replies,
    rate_handoff,
    unrated_closed_case,
)
from crm_store.handoff.relay import Delivery, RelayTurn, relay_turn

__all__ = [
    "TEXT_MAX_CHARS",
    "TRANSCRIPT_MAX_ENTRIES",
    "Delivery",
    "HandoffCaseView",
    "HandoffOpening",
    "RelayTurn",
    "StaffReply",
    "TranscriptEntry",
    "add_customer_message",
    "add_staff_reply",
    "close_handoff",
    "get_handoff",
    "list_open_handoffs",
    "mark_delivered",
    "open_case_for",
    "open_handoff",
    "conversations_awaiting_replies",
    "pending_replies",
    "rate_handoff",
    "relay_turn",
    "unrated_closed_case",
]
