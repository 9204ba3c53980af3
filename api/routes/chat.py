"""`POST /api/chat`: the only way a user's message reaches Rasa; `GET /api/chat/updates`: what came since.

The gateway cleans and bounds the message, stamps the caller's role into the metadata
(clients can never choose it) and forwards the turn to Rasa's REST channel on loopback,
which passes the metadata on to the actions. Whatever goes wrong on the way, the client
gets a list of bot messages back.

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

import hashlib
import logging
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
import httpx
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.auth import PrincipalDep
from api.care_inbox import care_messages
from api.deps import HttpClientDep, SessionFactoryDep, SettingsDep
from api.relay import relay_messages
from api.schemas.chat import SENDER_PATTERN, BotMessage, ChatRequest
from api.schemas.common import clean_message
from crm_store.access import Actor
from crm_store.errors import Invalid
from crm_store.handoff import RelayTurn, relay_turn

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/chat", tags=["chat"])

RASA_WEBHOOK_PATH = "/webhooks/rest/webhook"

EMPTY_MESSAGE_REPLY = "您好像还没有输入内容，请告诉我您想咨询什么～"
TOO_LONG_REPLY = "您的消息有点长（超过 {limit} 字），请精简后再发给我，或分几次发送。"
UNAVAILABLE_REPLY = "抱歉，小助手暂时无法回复，请稍后再试。"


def sender_tag(sender: str) -> str:
    """Return a short, stable hash of a sender id, to correlate log lines without the id."""
    return hashlib.sha256(sender.encode("utf-8")).hexdigest()[:12]


STAFF_SENDER_PREFIX = "staff:"


def conversation_id(principal: Actor, sender: str) -> str:
    """The Rasa sender id of this conversation: `staff:<employee_id>:<sender>` for staff.

    Raises:
        Invalid: A customer's sender that starts with `staff:` ("sender_reserved", field "sender").
    """
    if principal.is_staff:
        return f"{STAFF_SENDER_PREFIX}{principal.employee_id}:{sender}"
    if sender.lower().startswith(STAFF_SENDER_PREFIX):
        raise Invalid("sender_reserved", field="sender", prefix=STAFF_SENDER_PREFIX)
    return sender


def _reply(text: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=[{"text": text}])


def _unavailable(reason: str, sender: str, before: list[dict[str, Any]]) -> JSONResponse:
    logger.warning("chat turn failed for sender #%s: %s", sender_tag(sender), reason)
    return JSONResponse(status_code=503, content=[*before, {"text": UNAVAILABLE_REPLY}])


async def _relay(factory: sessionmaker[Session], sender: str, text: str | None) -> RelayTurn:
    # Worker thread: the store is synchronous SQLAlchemy.
    return await anyio.to_thread.run_sync(partial(relay_turn, factory, conversation=sender, text=text))


@router.post(
    "",
    summary="Send one message to 小助手",
    response_model=list[BotMessage],
    responses={
        401: {"description": "An `Authorization` header that is not a valid staff token."},
        503: {"model": list[BotMessage], "description": "Rasa is unavailable; the body says so."},
    },
)
async def chat(
    body: ChatRequest,
    settings: SettingsDep,
    http: HttpClientDep,
    principal: PrincipalDep,
    sessions: SessionFactoryDep,
) -> JSONResponse:
    """Answer the bot's messages for this turn, in the shape of Rasa's REST channel.

    Empty and over-long messages are answered politely without reaching Rasa. When Rasa
    is down the status is 503 and the body is still a list with one apology.

    While a hand-off case is open for `sender`, the message is added to the case for staff and
    not sent to Rasa; the answer is the staff replies not yet shown, or a short holding message.
    Staff replies still waiting when the case is already closed come before Rasa's answer.
    """
    sender = conversation_id(principal, body.sender)
    message = clean_message(body.message)
    if not message.strip():
        return _reply(EMPTY_MESSAGE_REPLY)
    if len(message) > settings.max_message_chars:
        return _reply(TOO_LONG_REPLY.format(limit=settings.max_message_chars))

    try:
        turn = await _relay(sessions, sender, message)
    except SQLAlchemyError as exc:
        # The store is down: the bot is more use than an error, even if a person had the chat.
        logger.warning(
            "hand-off check failed for sender #%s (%s); forwarding to Rasa",
            sender_tag(sender),
            type(exc).__name__,
        )
        turn = RelayTurn(paused=False)
    staff_messages = relay_messages(sender, turn)
    if turn.paused:
        return JSONResponse(content=staff_messages)

    # Set last: whatever the body says about role or identity is overwritten by the token's.
    metadata: dict[str, Any] = {
        **(body.metadata or {}),
        "role": principal.role,
        "principal_id": principal.employee_id,
    }
    payload = {"sender": sender, "message": message, "metadata": metadata}
    url = settings.rasa_url.rstrip("/") + RASA_WEBHOOK_PATH
    try:
        response = await http.post(url, json=payload, timeout=settings.rasa_timeout_s)
    except httpx.HTTPError as exc:
        # The exception text names the URL and the OS error, never the request body.
        return _unavailable(f"{type(exc).__name__}: {exc}", sender, staff_messages)
    if response.status_code != 200:
        return _unavailable(f"Rasa answered HTTP {response.status_code}", sender, staff_messages)
    try:
        bot_messages = response.json()
    except ValueError:
        return _unavailable("Rasa answered a body that is not JSON", sender, staff_messages)
    if not isinstance(bot_messages, list) or not all(isinstance(m, dict) for m in bot_messages):
        return _unavailable("Rasa answered JSON that is not a list of messages", sender, staff_messages)
    return JSONResponse(content=[*staff_messages, *bot_messages])


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
        turn = await _relay(sessions, sender, None)
    except SQLAlchemyError as exc:
        logger.warning("updates failed for sender #%s (%s)", sender_tag(sender), type(exc).__name__)
        return JSONResponse(status_code=503, content=[], headers=headers)
    try:
        care = await care_messages(sessions, http, settings, principal, sender)
    except SQLAlchemyError as exc:
        # The staff replies above are already taken: show them; care messages wait for a later poll.
        logger.warning("care inbox failed for sender #%s (%s)", sender_tag(sender), type(exc).__name__)
        care = []
    return JSONResponse(content=[*relay_messages(sender, turn), *care], headers=headers)
