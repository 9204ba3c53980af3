"""`POST /api/chat`: the only way a user's message reaches Rasa; `GET /api/chat/updates`: what came since.

Both are thin callers of `api.gateway` (channel "web"), which cleans and bounds the message,
stamps the caller's role into the metadata (clients can never choose it) and forwards the turn to
Rasa's REST channel on loopback, which passes the metadata on to the actions. Whatever goes wrong on
the way, the client gets a list of bot messages back.

While a person has the conversation (an open hand-off case), the hand-off service
(`crm_store.handoff.relay_turn`) records messages for staff instead of letting them reach Rasa, and
staff replies come back in the same shape, worded by `api.relay`.

The poll also shows proactive care's inbox messages (`api.care_inbox`), each once: a signed-in
employee's care notices (pushed into the active Rasa conversation as `utter_care_notice`) and the
web-inbox messages of the customer this conversation was verified as.

Who is chatting comes from the `Authorization` header only (`api.auth.PrincipalDep`): without one
the caller is a customer, as always; with an employee's token the metadata says their role and
employee id, and the conversation is `staff:<employee_id>:<sender>`, so that a staff tracker (with
what staff were shown) can never be continued by anyone else. A customer's sender may therefore not
start with `staff:` (422).
"""

import logging
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.auth import PrincipalDep
from api.deps import HttpClientDep, SessionFactoryDep, SettingsDep
from api.gateway import (
    EMPTY_MESSAGE_REPLY,
    RASA_WEBHOOK_PATH,
    STAFF_SENDER_PREFIX,
    TOO_LONG_REPLY,
    UNAVAILABLE_REPLY,
    WEB_CHANNEL,
    chat_turn,
    conversation_id,
    pending_updates,
    sender_tag,
)
from api.rate_limit import CHAT_LIMITED_REPLY, RateLimitsDep
from api.schemas.chat import SENDER_PATTERN, BotMessage, ChatRequest

__all__ = [
    "EMPTY_MESSAGE_REPLY",
    "RASA_WEBHOOK_PATH",
    "STAFF_SENDER_PREFIX",
    "TOO_LONG_REPLY",
    "UNAVAILABLE_REPLY",
    "conversation_id",
    "router",
    "sender_tag",
]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/chat", tags=["chat"])


@router.post(
    "",
    summary="Send one message to 小助手",
    response_model=list[BotMessage],
    responses={
        401: {"description": "An `Authorization` header that is not a valid staff token."},
        429: {
            "model": list[BotMessage],
            "description": "Too many turns of this conversation (`CRM_CHAT_RATE_LIMIT`): one polite "
            "message, and `Retry-After` in seconds.",
        },
        503: {"model": list[BotMessage], "description": "Rasa is unavailable; the body says so."},
    },
)
async def chat(
    body: ChatRequest,
    settings: SettingsDep,
    http: HttpClientDep,
    principal: PrincipalDep,
    sessions: SessionFactoryDep,
    limits: RateLimitsDep,
) -> JSONResponse:
    """Answer the bot's messages for this turn, in the shape of Rasa's REST channel.

    Empty and over-long messages are answered politely without reaching Rasa. When Rasa
    is down the status is 503 and the body is still a list with one apology.

    While a hand-off case is open for `sender`, the message is added to the case for staff and
    not sent to Rasa; the answer is the staff replies not yet shown, or a short holding message.
    Staff replies still waiting when the case is already closed come before Rasa's answer.

    Each conversation has a budget of turns (`CRM_CHAT_RATE_LIMIT`, shared with the Socket.IO
    channel); a turn over it is 429 with one polite message and `Retry-After`, and reaches nobody.
    """
    conversation = conversation_id(principal, body.sender)
    refusal = await limits.chat_turn(conversation, settings.chat_rate_limit)
    if refusal is not None:
        logger.info("chat turn over the rate limit for sender #%s", sender_tag(conversation))
        reply = [{"text": CHAT_LIMITED_REPLY.format(seconds=refusal.retry_after_s)}]
        return JSONResponse(status_code=429, content=reply, headers=refusal.headers)
    turn = await chat_turn(
        conversation=conversation,
        text=body.message,
        principal=principal,
        channel=WEB_CHANNEL,
        metadata=body.metadata,
        settings=settings,
        http=http,
        sessions=sessions,
    )
    return JSONResponse(status_code=turn.status, content=turn.messages)


@router.get(
    "/updates",
    summary="Fetch staff replies and care messages not yet shown to this conversation",
    response_model=list[BotMessage],
    responses={
        401: {"description": "An `Authorization` header that is not a valid staff token."},
        503: {"model": list[BotMessage], "description": "The CRM store is unavailable; empty list."},
    },
)
async def updates(
    sender: Annotated[
        str,
        Query(
            min_length=1,
            max_length=128,
            pattern=SENDER_PATTERN,
            description="The conversation id used with `POST /api/chat`.",
        ),
    ],
    sessions: SessionFactoryDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    http: HttpClientDep,
) -> JSONResponse:
    """Return the staff replies and care messages waiting for `sender` as bot messages, each once.

    The web page polls this while it is open. After a hand-off case is closed, its closing message
    comes with 1–5 rating buttons; the chosen one is sent back via `/api/chat`. Care messages: a
    signed-in employee's care notices (birthdays, lapsed customers, follow-ups, complaint
    deadlines), and for a customer verified in this conversation their web-inbox messages
    (`api.care_inbox`). An empty list means nothing new.
    """
    headers = {"Cache-Control": "no-store"}
    sender = conversation_id(principal, sender)
    try:
        messages = await pending_updates(
            conversation=sender, principal=principal, settings=settings, http=http, sessions=sessions
        )
    except SQLAlchemyError as exc:
        logger.warning("updates failed for sender #%s (%s)", sender_tag(sender), type(exc).__name__)
        return JSONResponse(status_code=503, content=[], headers=headers)
    return JSONResponse(content=messages, headers=headers)
