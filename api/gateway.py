"""One chat turn for every channel: the only way a user's message reaches Rasa.

Every channel (the web chat's `POST /api/chat`, the Socket.IO web widget, WeChat, WeCom; see
`api.channels`) hands its turn to `chat_turn` and shows the bot messages it answers, in the shape
of Rasa's REST channel (`text`, `buttons`, `image`, `custom`). The gateway cleans and bounds the
message, lets the hand-off service (`crm_store.handoff.relay_turn`) keep the turn for staff while
a person has the conversation, stamps the caller's role, employee id and channel into the metadata
(clients can never choose them) and forwards the turn to Rasa's REST channel on loopback, which
passes the metadata on to the actions and the tracker store (to one of several Rasa replicas, chosen
by `api.rasa_servers`). Whatever goes wrong on the way, the channel gets a list of bot messages back:
503 with a polite apology when Rasa is unavailable.

`pending_updates` is what came since for a conversation: staff replies of a hand-off (worded by
`api.relay`) and proactive care's inbox messages (`api.care_inbox`), each once.

Conversations are Rasa sender ids: `conversation_id(principal, sender)` for web and Socket.IO
senders (`staff:<employee_id>:<sender>` for a signed-in employee, so that a staff tracker can never
be continued by anyone else), `wechat:<openid>` for WeChat and `staff:<employee_id>:wecom` for WeCom.

Metadata without a `channel` is the web chat's, as it always was: the web channel stamps
`"channel": "web"` only over a client's own `channel`; every other channel always stamps its name.
Nothing here logs a message or a sender id in clear (`sender_tag`).
"""

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import anyio.to_thread
import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.care_inbox import care_messages
from api.rasa_servers import NOT_DELIVERED, rasa_servers
from api.relay import relay_messages
from api.schemas.common import clean_message
from api.texts import wording
from crm_store.access import Actor
from crm_store.errors import Invalid
from crm_store.handoff import RelayTurn, relay_turn
from crm_store.settings import ApiSettings
from crm_store.wechat_links import WECHAT_CONVERSATION_PREFIX

__all__ = [
    "CHANNELS",
    "EMPTY_MESSAGE_REPLY",
    "RASA_WEBHOOK_PATH",
    "RESERVED_SENDER_PREFIXES",
    "STAFF_SENDER_PREFIX",
    "TOO_LONG_REPLY",
    "UNAVAILABLE_REPLY",
    "WEB_CHANNEL",
    "Turn",
    "chat_turn",
    "conversation_id",
    "pending_updates",
    "reserved_prefix",
    "sender_tag",
]

CHANNELS: Final = ("web", "socketio", "wechat", "wecom")
WEB_CHANNEL: Final = "web"
RASA_WEBHOOK_PATH: Final = "/webhooks/rest/webhook"
STAFF_SENDER_PREFIX: Final = "staff:"
RESERVED_SENDER_PREFIXES: Final = (STAFF_SENDER_PREFIX, WECHAT_CONVERSATION_PREFIX)

# The channel layer's own words (api/texts.yml; the bot's come from Rasa's domain).
EMPTY_MESSAGE_REPLY: Final = wording("gateway.empty_message")
TOO_LONG_REPLY: Final = wording("gateway.too_long")
UNAVAILABLE_REPLY: Final = wording("gateway.unavailable")


def _logger(channel: str) -> logging.Logger:
    # The web chat's turns log as they always did; every other channel under its own name.
    return logging.getLogger("api.routes.chat" if channel == WEB_CHANNEL else f"api.channels.{channel}")


@dataclass(frozen=True)
class Turn:
    """The bot's answer to one turn: messages in the shape of Rasa's REST channel, and a status."""

    messages: list[dict[str, Any]]
    status: int = 200
    """503 when Rasa is unavailable (the messages then end with the polite apology)."""


def sender_tag(sender: str) -> str:
    """Return a short, stable hash of a sender id, to correlate log lines without the id."""
    return hashlib.sha256(sender.encode("utf-8")).hexdigest()[:12]


def reserved_prefix(sender: str) -> str | None:
    """The reserved prefix `sender` starts with (any case), or None.

    Conversations of staff (`staff:`) and of WeChat followers (`wechat:`, whose linked follower's
    session starts verified) are made by the gateway and the WeChat channel only: a client that
    chooses its own sender id must never continue one of them.
    """
    lowered = sender.lower()
    return next((prefix for prefix in RESERVED_SENDER_PREFIXES if lowered.startswith(prefix)), None)


def conversation_id(principal: Actor, sender: str) -> str:
    """The Rasa sender id of this conversation: `staff:<employee_id>:<sender>` for staff.

    Raises:
        Invalid: A customer's sender that starts with a reserved prefix (`staff:`, `wechat:`)
            ("sender_reserved", field "sender").
    """
    if principal.is_staff:
        return f"{STAFF_SENDER_PREFIX}{principal.employee_id}:{sender}"
    prefix = reserved_prefix(sender)
    if prefix is not None:
        raise Invalid("sender_reserved", field="sender", prefix=prefix)
    return sender


def _unavailable(channel: str, reason: str, conversation: str, before: list[dict[str, Any]]) -> Turn:
    _logger(channel).warning("chat turn failed for sender #%s: %s", sender_tag(conversation), reason)
    return Turn([*before, {"text": UNAVAILABLE_REPLY}], status=503)


async def _relay(factory: sessionmaker[Session], conversation: str, text: str | None) -> RelayTurn:
    # Worker thread: the store is synchronous SQLAlchemy.
    return await anyio.to_thread.run_sync(partial(relay_turn, factory, conversation=conversation, text=text))


def _metadata(metadata: Mapping[str, Any] | None, principal: Actor, channel: str) -> dict[str, Any]:
    stamped: dict[str, Any] = dict(metadata or {})
    # The channel the turn came through, never what the client says: recorded in the tracker store
    # with the turn (the service metrics count conversations per channel).
    stamped["channel"] = channel
    # Set last: whatever the client says about role or identity is overwritten by the token's.
    stamped["role"] = principal.role
    stamped["principal_id"] = principal.employee_id
    return stamped


async def chat_turn(
    *,
    conversation: str,
    text: str,
    principal: Actor,
    channel: str,
    metadata: Mapping[str, Any] | None,
    settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
) -> Turn:
    """Answer one user turn with the bot's messages.

    Empty and over-long messages are answered politely without reaching Rasa. While a hand-off
    case is open for `conversation`, the message is added to the case for staff and not sent to
    Rasa; the answer is the staff replies not yet shown, or a short holding message. Staff replies
    still waiting when the case is already closed come before Rasa's answer. When Rasa is down the
    status is 503 and the messages end with one apology.

    Raises:
        ValueError: `channel` is not one of `CHANNELS`.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    message = clean_message(text)
    if not message.strip():
        return Turn([{"text": EMPTY_MESSAGE_REPLY}])
    if len(message) > settings.max_message_chars:
        return Turn([{"text": TOO_LONG_REPLY.format(limit=settings.max_message_chars)}])

    try:
        relayed = await _relay(sessions, conversation, message)
    except SQLAlchemyError as exc:
        # The store is down: the bot is more use than an error, even if a person had the chat.
        _logger(channel).warning(
            "hand-off check failed for sender #%s (%s); forwarding to Rasa",
            sender_tag(conversation),
            type(exc).__name__,
        )
        relayed = RelayTurn(paused=False)
    staff_messages = relay_messages(conversation, relayed)
    if relayed.paused:
        return Turn(staff_messages)

    payload = {
        "sender": conversation,
        "message": message,
        "metadata": _metadata(metadata, principal, channel),
    }
    servers = rasa_servers(settings.rasa_servers, settings.rasa_retry_after_s)
    response: httpx.Response | None = None
    not_delivered = ""
    for server in servers.order(conversation):
        try:
            response = await http.post(
                server + RASA_WEBHOOK_PATH, json=payload, timeout=settings.rasa_timeout_s
            )
        except NOT_DELIVERED as exc:
            # Nothing reached this server: the next one can take the turn (api/rasa_servers.py).
            not_delivered = f"{type(exc).__name__}: {exc}"
            servers.failed(server, not_delivered)
            continue
        except httpx.HTTPError as exc:
            # The turn may have reached Rasa: sending it again could answer it twice.
            # The exception text names the URL and the OS error, never the request body.
            servers.failed(server, type(exc).__name__)
            return _unavailable(channel, f"{type(exc).__name__}: {exc}", conversation, staff_messages)
        if response.status_code >= 500:
            servers.failed(server, f"HTTP {response.status_code}")
        else:
            servers.answered(server)
        break
    if response is None:
        return _unavailable(channel, not_delivered, conversation, staff_messages)
    if response.status_code != 200:
        return _unavailable(
            channel, f"Rasa answered HTTP {response.status_code}", conversation, staff_messages
        )
    try:
        bot_messages = response.json()
    except ValueError:
        return _unavailable(channel, "Rasa answered a body that is not JSON", conversation, staff_messages)
    if not isinstance(bot_messages, list) or not all(isinstance(m, dict) for m in bot_messages):
        return _unavailable(
            channel, "Rasa answered JSON that is not a list of messages", conversation, staff_messages
        )
    return Turn([*staff_messages, *bot_messages])


async def pending_updates(
    *,
    conversation: str,
    principal: Actor,
    settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
) -> list[dict[str, Any]]:
    """The staff replies and care messages waiting for `conversation` as bot messages, each once.

    After a hand-off case is closed, its closing message comes with 1–5 rating buttons; the chosen
    one comes back as a turn. Care messages: a signed-in employee's care notices, and for a customer
    verified in this conversation their web-inbox messages (`api.care_inbox`). [] means nothing new.

    Raises:
        SQLAlchemyError: The store is unavailable for the hand-off check (nothing was taken). When
            only the care inbox fails, the staff replies already taken are answered and care
            messages wait for a later call.
    """
    relayed = await _relay(sessions, conversation, None)
    try:
        care = await care_messages(sessions, http, settings, principal, conversation)
    except SQLAlchemyError as exc:
        logging.getLogger(__name__).warning(
            "care inbox failed for sender #%s (%s)", sender_tag(conversation), type(exc).__name__
        )
        care = []
    return [*relay_messages(conversation, relayed), *care]
