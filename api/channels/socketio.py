"""The web widget's channel: Socket.IO, speaking the protocol of Rasa 3.6's own socketio channel.

Rasa's webchat widget (and any client of Rasa's `socketio` channel) points at the API instead of
at Rasa: `socketUrl` the API's origin, `socketPath` `/socket.io/` (`CRM_SOCKETIO_PATH`). Mounted
on the API by `mount` (api/main.py); every turn goes through `api.gateway.chat_turn` with channel
`socketio`, so the widget gets the same limits, hand-off relay, role stamping and apology as the
web chat.

The protocol, as in rasa/core/channels/socketio.py:

- `session_request` `{session_id}` → `session_confirm` with the session id: the one asked for, or a
  new one (`uuid4().hex`) when none was asked for or it is not a valid conversation id (the
  pattern of the web chat's sender, at most 128 characters, never starting with a reserved prefix,
  `api.gateway.reserved_prefix`).
- `user_uttered` `{message, session_id, customData}` (event name `CRM_SOCKETIO_USER_MESSAGE_EVT`)
  → the bot's messages, each as one `bot_uttered` event (`CRM_SOCKETIO_BOT_MESSAGE_EVT`) in the
  shape Rasa emits: `{text}` (one event per paragraph), `{text, quick_replies: [{content_type,
  title, payload}]}` for buttons, `{attachment: {type: "image", payload: {src}}}` for an image,
  `{attachment}` and custom payloads (the `data` of a custom payload that has one, as Rasa sends
  it; the payload itself otherwise).

Who is chatting: a customer, unless a staff token comes in the connection's `auth` dict
(`{"token": ...}`) or in a message's `customData.token`; it is checked with `api.auth` exactly like
an `Authorization` header (a bad one refuses the connection, or answers the message with the
sign-in error, never a customer's turn). A role or employee id in `customData` is overwritten by
the gateway; the token itself is never forwarded. A staff conversation is
`staff:<employee_id>:<session_id>`, as in the web chat.

Pushed without the client asking: staff replies of a hand-off and proactive care messages. While a
session is confirmed, a background task polls `api.gateway.pending_updates` every
`CRM_SOCKETIO_PUSH_INTERVAL_S` and emits what came as `bot_uttered`; it stops on disconnect.

Logs name a conversation by `sender_tag` only, never a message or a token.
"""

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import socketio
from fastapi import FastAPI
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.auth import require_staff_actor
from api.deps import api_settings
from api.errors import message_for
from api.gateway import Turn, chat_turn, conversation_id, pending_updates, reserved_prefix, sender_tag
from api.rate_limit import CHAT_LIMITED_REPLY, RateLimits
from api.schemas.chat import MAX_METADATA_BYTES, SENDER_PATTERN
from crm_store.access import CUSTOMER, Actor
from crm_store.errors import CrmError, Unauthenticated
from crm_store.settings import ApiSettings, get_api_settings

__all__ = ["CHANNEL", "MAX_SESSION_CHARS", "mount", "socketio_messages"]

logger = logging.getLogger(__name__)

CHANNEL: Final = "socketio"
MAX_SESSION_CHARS: Final = 128
_SESSION_ID: Final = re.compile(SENDER_PATTERN)


def valid_session_id(value: object) -> str | None:
    """`value` if it can be a customer's conversation id, else None."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SESSION_CHARS:
        return None
    if not _SESSION_ID.match(value) or reserved_prefix(value) is not None:
        return None
    return value


def _paragraphs(text: str) -> list[str]:
    return text.strip().split("\n\n") or [text]


def socketio_messages(message: Mapping[str, Any]) -> list[Any]:
    """One bot message of Rasa's REST channel as the `bot_uttered` payloads Rasa's socketio emits."""
    out: list[Any] = []
    text = message.get("text")
    buttons = message.get("buttons")
    if isinstance(text, str):
        parts: list[dict[str, Any]] = [{"text": part} for part in _paragraphs(text)]
        if buttons:
            for part in parts:
                part["quick_replies"] = []
            parts[-1]["quick_replies"] = [
                {"content_type": "text", "title": button.get("title"), "payload": button.get("payload")}
                for button in buttons
                if isinstance(button, Mapping)
            ]
        out.extend(parts)
    custom = message.get("custom")
    if custom is not None:
        # Rasa emits a custom payload's `data` (`emit(event, **custom)`); one without is sent whole.
        out.append(custom["data"] if isinstance(custom, Mapping) and "data" in custom else custom)
    image = message.get("image")
    if isinstance(image, str):
        out.append({"attachment": {"type": "image", "payload": {"src": image}}})
    attachment = message.get("attachment")
    if attachment is not None:
        out.append({"attachment": attachment})
    return out


@dataclass
class _Client:
    """What the server knows of one connected socket."""

    principal: Actor = CUSTOMER
    session_id: str | None = None
    pusher: asyncio.Task[None] | None = field(default=None, repr=False)


def _custom_metadata(data: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The client's `customData` without the token (forwarded if small, plain JSON), and the token."""
    custom = data.get("customData")
    if isinstance(custom, str):
        try:
            custom = json.loads(custom)
        except ValueError:
            custom = None
    if not isinstance(custom, Mapping):
        return None, None
    token = custom.get("token")
    metadata = {key: value for key, value in custom.items() if key != "token"}
    try:
        size = len(json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError):
        size = MAX_METADATA_BYTES + 1
    return (metadata if size <= MAX_METADATA_BYTES else None), (token if isinstance(token, str) else None)


class _Resources:
    """The app's shared HTTP client, session factory and settings (those of its dependency seams)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    @property
    def settings(self) -> ApiSettings:
        # The settings dependency's override when a test set one; `api_settings` itself is async.
        override = self._app.dependency_overrides.get(api_settings)
        settings = get_api_settings() if override is None else override()
        if not isinstance(settings, ApiSettings):  # pragma: no cover - a broken override
            raise RuntimeError("the settings dependency did not answer ApiSettings")
        return settings

    @property
    def http(self) -> Any:
        client = getattr(self._app.state, "http_client", None)
        if client is None:
            raise RuntimeError("HTTP client missing: the app was not started through its lifespan")
        return client

    @property
    def sessions(self) -> sessionmaker[Session]:
        factory = getattr(self._app.state, "session_factory", None)
        if not isinstance(factory, sessionmaker):
            raise RuntimeError("Session factory missing: the app was not started through its lifespan")
        return factory

    @property
    def rate_limits(self) -> RateLimits:
        limits = getattr(self._app.state, "rate_limits", None)
        if not isinstance(limits, RateLimits):
            raise RuntimeError("Rate limits missing: the app was not started through its lifespan")
        return limits


def mount(app: FastAPI, settings: ApiSettings) -> socketio.AsyncServer:
    """Serve the Socket.IO channel on `app` at `settings.socketio_path`; answer the server."""
    origins = settings.socketio_cors_origins
    # None is python-socketio's same-origin default ([] would switch the check off altogether).
    cors: str | list[str] | None = "*" if origins == ["*"] else (list(origins) or None)
    sio = socketio.AsyncServer(
        async_mode="asgi", cors_allowed_origins=cors, logger=False, engineio_logger=False
    )
    resources = _Resources(app)
    clients: dict[str, _Client] = {}
    user_evt = settings.socketio_user_message_evt
    bot_evt = settings.socketio_bot_message_evt

    async def staff_of(token: str) -> Actor:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        return await require_staff_actor(resources.settings, resources.sessions, credentials)

    async def emit_all(sid: str, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            for payload in socketio_messages(message):
                await sio.emit(bot_evt, payload, to=sid)

    async def push(sid: str) -> None:
        """Emit staff replies and care messages for this socket's conversation until cancelled."""
        while True:
            current = resources.settings
            await asyncio.sleep(current.socketio_push_interval_s)
            client = clients.get(sid)
            if client is None or client.session_id is None:
                return
            conversation = conversation_id(client.principal, client.session_id)
            try:
                messages = await pending_updates(
                    conversation=conversation,
                    principal=client.principal,
                    settings=current,
                    http=resources.http,
                    sessions=resources.sessions,
                )
            except SQLAlchemyError as exc:
                logger.warning(
                    "push failed for sender #%s (%s)", sender_tag(conversation), type(exc).__name__
                )
                continue
            await emit_all(sid, messages)

    def start_push(sid: str, client: _Client) -> None:
        if client.pusher is None or client.pusher.done():
            client.pusher = asyncio.create_task(push(sid), name=f"socketio-push-{sender_tag(sid)}")

    @sio.on("connect")  # type: ignore[untyped-decorator]
    async def connect(sid: str, _environ: dict[str, Any], auth: Any = None) -> None:
        client = _Client()
        token = auth.get("token") if isinstance(auth, Mapping) else None
        if isinstance(token, str) and token:
            try:
                client.principal = await staff_of(token)
            except Unauthenticated as exc:
                raise socketio.exceptions.ConnectionRefusedError(message_for(exc)) from None
        clients[sid] = client

    @sio.on("disconnect")  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, *_reason: Any) -> None:
        client = clients.pop(sid, None)
        if client is not None and client.pusher is not None:
            client.pusher.cancel()

    @sio.on("session_request")  # type: ignore[untyped-decorator]
    async def session_request(sid: str, data: Any = None) -> None:
        client = clients.get(sid)
        if client is None:
            return
        asked = data.get("session_id") if isinstance(data, Mapping) else None
        client.session_id = valid_session_id(asked) or uuid.uuid4().hex
        await sio.emit("session_confirm", client.session_id, to=sid)
        start_push(sid, client)

    @sio.on(user_evt)  # type: ignore[untyped-decorator]
    async def user_uttered(sid: str, data: Any = None) -> None:
        client = clients.get(sid)
        if client is None:
            return
        data = data if isinstance(data, Mapping) else {}
        session_id = valid_session_id(data.get("session_id")) or client.session_id
        if session_id is None:  # no session asked for: the socket's own, as Rasa does
            session_id = client.session_id = uuid.uuid4().hex
        metadata, token = _custom_metadata(data)
        principal = client.principal
        if token:
            try:
                principal = client.principal = await staff_of(token)
            except Unauthenticated as exc:
                await emit_all(sid, [{"text": message_for(exc)}])
                return
        text = data.get("message")
        try:
            conversation = conversation_id(principal, session_id)
        except CrmError:  # pragma: no cover - valid_session_id refuses reserved prefixes already
            return
        current = resources.settings
        # The budget of `/api/chat`: one conversation's turns count alike whichever way they come.
        refusal = await resources.rate_limits.chat_turn(conversation, current.chat_rate_limit)
        if refusal is not None:
            await emit_all(sid, [{"text": CHAT_LIMITED_REPLY.format(seconds=refusal.retry_after_s)}])
            return
        turn: Turn = await chat_turn(
            conversation=conversation,
            text=text if isinstance(text, str) else "",
            principal=principal,
            channel=CHANNEL,
            metadata=metadata,
            settings=current,
            http=resources.http,
            sessions=resources.sessions,
        )
        await emit_all(sid, turn.messages)
        start_push(sid, client)

    app.mount(settings.socketio_path, socketio.ASGIApp(sio, socketio_path=None))
    return sio
