"""The WeChat Official Account (公众号) channel for customers: `GET|POST /channels/wechat`.

WeChat calls this URL for every message a follower sends (docs/channels.md). Each callback is
signed with the account's Token (`wechatpy.utils.check_signature`); in safe mode (`CRM_WECHAT_AES_KEY`)
its body is encrypted and so is the passive reply (`wechatpy.crypto.WeChatCrypto`).

A text, a voice message's speech recognition or a menu click (its EventKey) is one turn of the
conversation `wechat:<openid>` through `api.gateway.chat_turn`, as a customer. WeChat waits 5 s for
an answer and then retries (three times), so:

* each callback is taken once, whichever API worker gets it (`crm_store.wechat_links.first_seen`
  by MsgId): a retry is answered "success" and never reaches Rasa again;
* the turn has `CRM_WECHAT_REPLY_BUDGET_S` (4 s): in time, its text is the passive reply; late,
  the callback is answered "success" at once and the reply goes out when ready through the
  customer-service message API (`WeChatClient.message.send_text`; the access token is cached in
  the client's session storage: in memory, one fetch per worker per two hours; several workers
  could share a Redis storage instead).

A text has at most 2,048 bytes (`MAX_TEXT_BYTES`): a longer answer is cut between lines
(`split_message`), its first part is the passive reply and the rest follow as customer-service
messages, in order. Buttons become numbered lines ("回复 1 …"); a follower's "1" is sent as that
button's payload (remembered per worker for `_CHOICES_TTL_S`). "解绑" removes the follower's link
to a customer; the link is made when the follower verified themselves in the chat (the bot's own
audit of `verify_customer` for this conversation, read after each turn), and a linked follower's
next dialogue session starts verified (the bot's `action_session_start`, actions/identity.py).

Without `CRM_WECHAT_TOKEN` the routes answer 404. Openids never reach the logs in clear.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Annotated, Any, Final

import anyio.to_thread
import httpx
import requests
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from wechatpy import parse_message
from wechatpy.client import WeChatClient
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import ClickEvent, SubscribeEvent
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException, WeChatClientException
from wechatpy.messages import BaseMessage, TextMessage, VoiceMessage
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from api.deps import HttpClientDep, SessionFactoryDep, SettingsDep
from api.gateway import UNAVAILABLE_REPLY, Turn, chat_turn, pending_updates, sender_tag
from crm_store import clock
from crm_store.access import CUSTOMER
from crm_store.handoff import conversations_awaiting_replies
from crm_store.identity import verified_customer_of
from crm_store.settings import ApiSettings, WechatSettings, get_wechat_settings
from crm_store.wechat_links import (
    WECHAT_CONVERSATION_PREFIX,
    first_seen,
    last_unlinked_at,
    link,
    linked_customer,
    purge_seen,
    unlink,
    wechat_conversation,
)

__all__ = [
    "CHANNEL",
    "NOT_LINKED_REPLY",
    "UNLINKED_REPLY",
    "UNLINK_COMMAND",
    "UNSUPPORTED_REPLY",
    "WELCOME_REPLY",
    "render_text",
    "push_staff_replies",
    "split_message",
    "start_pusher",
    "router",
    "wechat_api_client",
]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/channels/wechat", tags=["channels"])

CHANNEL: Final = "wechat"
SUCCESS: Final = "success"
"""What WeChat expects from a callback that gets no passive reply (it then shows nothing)."""
UNLINK_COMMAND: Final = "解绑"
MAX_BODY_BYTES: Final = 64 * 1024
"""WeChat's callbacks are a few hundred bytes; anything far larger is not from WeChat."""
VERIFIED_WINDOW: Final = timedelta(minutes=60)
"""A verification in the last hour belongs to the current dialogue session (crm_store.identity)."""

# The channel's own words; the bot's come from Rasa's domain.
UNSUPPORTED_REPLY: Final = "抱歉，小助手暂时只能看懂文字和语音消息，请用文字告诉我您想咨询什么～"
WELCOME_REPLY: Final = (
    "您好，欢迎关注！我是小助手，可以帮您查询订单、处理投诉和解答常见问题，请直接发消息给我～"
)
UNLINKED_REPLY: Final = "已为您解除微信与客户身份的绑定。如需再次绑定，请在对话中重新验证身份。"
NOT_LINKED_REPLY: Final = "您的微信目前没有绑定客户身份，无需解绑。"
BUTTON_LINE: Final = "回复 {number} {title}"
IMAGE_LINE: Final = "[图片] {url}"

MAX_TEXT_BYTES: Final = 2048
"""WeChat's limit on one text message (passive reply or customer-service message), UTF-8 bytes."""
_CHOICES_TTL_S: Final = 30 * 60.0
_CHOICES_MAX: Final = 10_000
# openid -> (when, button payloads in the order shown); per worker, see the module's docstring.
_choices: dict[str, tuple[float, list[str]]] = {}
_choices_lock = threading.Lock()

_clients: dict[tuple[str, str, str], WeChatClient] = {}
_clients_lock = threading.Lock()


WechatSettingsDep = Annotated[WechatSettings, Depends(get_wechat_settings)]


class _ApiClient(WeChatClient):  # type: ignore[misc]  # wechatpy has no type hints
    """wechatpy's client with its server taken from `CRM_WECHAT_API_BASE` (the token URL included)."""

    def __init__(self, app_id: str, secret: str, api_base: str) -> None:
        super().__init__(app_id, secret, timeout=10)
        self.API_BASE_URL = api_base.rstrip("/") + "/cgi-bin/"

    def fetch_access_token(self) -> Any:
        # wechatpy's own names https://api.weixin.qq.com whatever API_BASE_URL says.
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


def wechat_api_client(settings: WechatSettings) -> WeChatClient | None:
    """The customer-service message client of these settings, one per account and server (token cached).

    None without an AppID and AppSecret.
    """
    if not settings.app_id or settings.app_secret is None:
        return None
    secret = settings.app_secret.get_secret_value()
    key = (settings.app_id, secret, settings.api_base)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _ApiClient(settings.app_id, secret, settings.api_base)
        return client


def render_text(messages: list[dict[str, Any]]) -> str:
    """The bot's messages as one WeChat text: texts, image links, buttons as "回复 1 …" lines."""
    lines: list[str] = []
    for message in messages:
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            lines.append(text.strip())
        image = message.get("image")
        if isinstance(image, str) and image:
            lines.append(IMAGE_LINE.format(url=image))
        buttons = message.get("buttons") or []
        for number, button in enumerate(buttons if isinstance(buttons, list) else [], start=1):
            if isinstance(button, Mapping):
                lines.append(BUTTON_LINE.format(number=number, title=button.get("title", "")))
    return "\n".join(lines)


def split_message(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """`text` as messages of at most `limit` UTF-8 bytes, cut between lines where it can.

    A Chinese character is three bytes, so 2,048 bytes hold about 680 of them; a line longer than
    that is cut between characters (never inside one).
    """
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        current = ""
        for char in line:
            if len((current + char).encode()) > limit:
                parts.append(current)
                current = ""
            current += char
    if current or not parts:
        parts.append(current)
    return parts


def _button_payloads(messages: list[dict[str, Any]]) -> list[str]:
    payloads: list[str] = []
    for message in messages:
        buttons = message.get("buttons") or []
        payloads.extend(
            str(b.get("payload") or b.get("title") or "")
            for b in (buttons if isinstance(buttons, list) else [])
            if isinstance(b, Mapping)
        )
    return payloads


def _remember_choices(openid: str, messages: list[dict[str, Any]]) -> None:
    payloads = _button_payloads(messages)
    with _choices_lock:
        if not payloads:
            _choices.pop(openid, None)
            return
        if len(_choices) >= _CHOICES_MAX:
            _choices.clear()  # crude but bounded; a lost choice is sent as the plain digit
        _choices[openid] = (time.monotonic(), payloads)


def _chosen(openid: str, text: str) -> str:
    stripped = text.strip()
    if not stripped.isdecimal():
        return text
    with _choices_lock:
        remembered = _choices.get(openid)
    if remembered is None or time.monotonic() - remembered[0] > _CHOICES_TTL_S:
        return text
    number = int(stripped)
    payloads = remembered[1]
    return payloads[number - 1] if 1 <= number <= len(payloads) else text


def _message_key(message: BaseMessage) -> str:
    if message.id:
        return str(message.id)
    # Events have no MsgId: WeChat's own advice is FromUserName + CreateTime (here as a pseudonym).
    return f"e:{sender_tag(f'{message.source}:{message.time}:{message.type}')}"


def _take(factory: sessionmaker[Session], key: str) -> bool:
    now = clock.now()
    with factory.begin() as session:
        new = first_seen(session, key, now=now)
        purge_seen(session, now=now)
    return new


def _unlink(factory: sessionmaker[Session], openid: str) -> str | None:
    with factory.begin() as session:
        return unlink(session, openid)


def _link_if_verified(factory: sessionmaker[Session], openid: str) -> None:
    now = clock.now()
    with factory.begin() as session:
        since = now - VERIFIED_WINDOW
        unlinked = last_unlinked_at(session, openid)
        customer_id = verified_customer_of(
            session,
            conversation=wechat_conversation(openid),
            since=since if unlinked is None else max(since, unlinked),
        )
        if customer_id is not None and linked_customer(session, openid) != customer_id:
            link(session, openid, customer_id, actor=CUSTOMER)


def _user_text(message: BaseMessage) -> str | None:
    """What the follower said, or None for a message the channel does not take."""
    if isinstance(message, TextMessage):
        return str(message.content or "")
    if isinstance(message, VoiceMessage):
        return str(message.recognition) if message.recognition else None
    if isinstance(message, ClickEvent):
        return str(message.key or "")
    return None


def _verify(settings: WechatSettings, signature: str, timestamp: str, nonce: str) -> str:
    """The Token, after checking the callback's signature; 404 when the channel is off, 403 when bad."""
    if settings.token is None:
        raise _NotFound
    token = settings.token.get_secret_value()
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise _Forbidden from None
    return token


class _NotFound(Exception):
    pass


class _Forbidden(Exception):
    pass


def _plain(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status)


_NOT_FOUND = (404, "not found")
_FORBIDDEN = (403, "invalid signature")
_BAD_REQUEST = (400, "bad request")


@router.get("", summary="WeChat's URL verification (echostr)", response_class=PlainTextResponse)
async def verify_url(
    settings: WechatSettingsDep,
    signature: Annotated[str, Query(max_length=64)] = "",
    timestamp: Annotated[str, Query(max_length=32)] = "",
    nonce: Annotated[str, Query(max_length=64)] = "",
    echostr: Annotated[str, Query(max_length=256)] = "",
) -> PlainTextResponse:
    """Answer `echostr` when the signature is the account's (服务器配置's 提交)."""
    try:
        _verify(settings, signature, timestamp, nonce)
    except _NotFound:
        return _plain(*_NOT_FOUND)
    except _Forbidden:
        return _plain(*_FORBIDDEN)
    return PlainTextResponse(echostr)


@router.post("", summary="A follower's message, as WeChat calls it", response_class=Response)
async def callback(
    request: Request,
    background: BackgroundTasks,
    settings: WechatSettingsDep,
    api_settings: SettingsDep,
    http: HttpClientDep,
    sessions: SessionFactoryDep,
    signature: Annotated[str, Query(max_length=64)] = "",
    timestamp: Annotated[str, Query(max_length=32)] = "",
    nonce: Annotated[str, Query(max_length=64)] = "",
    encrypt_type: Annotated[str, Query(max_length=16)] = "",
    msg_signature: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Answer one callback: a passive reply (XML), or "success" when the reply comes later or not at all."""
    try:
        token = _verify(settings, signature, timestamp, nonce)
    except _NotFound:
        return _plain(*_NOT_FOUND)
    except _Forbidden:
        return _plain(*_FORBIDDEN)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _plain(*_BAD_REQUEST)

    crypto: WeChatCrypto | None = None
    if settings.aes_key is not None:
        if encrypt_type.lower() != "aes":
            return _plain(*_BAD_REQUEST)  # safe mode: WeChat always encrypts
        try:
            crypto = WeChatCrypto(token, settings.aes_key.get_secret_value(), settings.app_id or "")
            xml = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException):
            return _plain(*_FORBIDDEN)
        except Exception as exc:  # noqa: BLE001  # any undecryptable body is the sender's fault
            logger.info("wechat: undecryptable callback (%s)", type(exc).__name__)
            return _plain(*_BAD_REQUEST)
    else:
        xml = body
    try:
        message = parse_message(xml)
        openid = str(message.source or "")
    except Exception as exc:  # noqa: BLE001  # malformed XML, a missing MsgType …: never a 500
        logger.info("wechat: malformed callback (%s)", type(exc).__name__)
        return _plain(*_BAD_REQUEST)
    if not openid or len(openid) > 64:
        return _plain(*_BAD_REQUEST)
    subject = sender_tag(wechat_conversation(openid))

    def reply(text: str) -> Response:
        xml_reply = TextReply(source=message.target, target=message.source, content=text).render()
        if crypto is not None:
            xml_reply = crypto.encrypt_message(xml_reply, nonce, timestamp)
        return Response(content=xml_reply, media_type="application/xml")

    try:
        new = await anyio.to_thread.run_sync(_take, sessions, _message_key(message))
    except SQLAlchemyError as exc:
        # Without the store a retry cannot be told apart: better no answer than two (WeChat retries).
        logger.warning("wechat: callback store unavailable for #%s (%s)", subject, type(exc).__name__)
        return PlainTextResponse(SUCCESS)
    if not new:
        logger.info("wechat: repeated callback for #%s answered once already", subject)
        return PlainTextResponse(SUCCESS)

    if isinstance(message, SubscribeEvent):
        return reply(WELCOME_REPLY)
    text = _user_text(message)
    if text is None:
        if message.type == "event":
            return PlainTextResponse(SUCCESS)  # unsubscribe, views …: nothing to answer
        return reply(UNSUPPORTED_REPLY)
    if text.strip() == UNLINK_COMMAND:
        try:
            was = await anyio.to_thread.run_sync(_unlink, sessions, openid)
        except SQLAlchemyError as exc:
            logger.warning("wechat: unlink failed for #%s (%s)", subject, type(exc).__name__)
            return reply(UNAVAILABLE_REPLY)
        return reply(UNLINKED_REPLY if was is not None else NOT_LINKED_REPLY)

    turn = asyncio.ensure_future(
        _turn(openid, _chosen(openid, text), api_settings=api_settings, http=http, sessions=sessions)
    )
    done, _pending = await asyncio.wait({turn}, timeout=settings.reply_budget_s)
    if done:
        first, *rest = split_message(turn.result())
        if rest:
            # One passive reply per callback: the rest of a long answer follows as messages.
            background.add_task(_send_texts, rest, openid, settings)
        return reply(first)
    logger.info("wechat: turn of #%s over the reply budget; replying later", subject)
    background.add_task(_deliver_later, turn, openid, settings)
    return PlainTextResponse(SUCCESS)


async def _turn(
    openid: str,
    text: str,
    *,
    api_settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
) -> str:
    """One turn through the gateway, as this follower; answers the text to send back."""
    result: Turn = await chat_turn(
        conversation=wechat_conversation(openid),
        text=text,
        principal=CUSTOMER,
        channel=CHANNEL,
        metadata=None,
        settings=api_settings,
        http=http,
        sessions=sessions,
    )
    _remember_choices(openid, result.messages)
    if result.status == 200:
        try:
            await anyio.to_thread.run_sync(_link_if_verified, sessions, openid)
        except SQLAlchemyError as exc:
            logger.warning(
                "wechat: link check failed for #%s (%s)",
                sender_tag(wechat_conversation(openid)),
                type(exc).__name__,
            )
    return render_text(result.messages) or UNAVAILABLE_REPLY


async def _deliver_later(turn: "asyncio.Future[str]", openid: str, settings: WechatSettings) -> None:
    """Send a late turn's reply through the customer-service message API."""
    subject = sender_tag(wechat_conversation(openid))
    try:
        text = await turn
    except Exception as exc:  # noqa: BLE001  # a background task has no caller to raise to
        logger.error("wechat: late turn of #%s failed (%s)", subject, type(exc).__name__)
        return
    await _send_texts(split_message(text), openid, settings)


async def _send_texts(texts: list[str], openid: str, settings: WechatSettings) -> None:
    """Send texts in order through the customer-service message API; stop at the first failure."""
    subject = sender_tag(wechat_conversation(openid))
    client = wechat_api_client(settings)
    if client is None:
        logger.warning("wechat: reply for #%s dropped: CRM_WECHAT_APP_ID/APP_SECRET unset", subject)
        return
    for text in texts:
        try:
            await anyio.to_thread.run_sync(partial(client.message.send_text, openid, text))
        except (WeChatClientException, requests.RequestException) as exc:
            # The exception text may hold the URL with the access token: only its type and code are logged.
            logger.warning(
                "wechat: reply for #%s not delivered (%s %s)",
                subject,
                type(exc).__name__,
                getattr(exc, "errcode", ""),
            )
            return


# -- staff replies of a hand-off, pushed ------------------------------------------------------------


def _awaiting(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return conversations_awaiting_replies(session, prefix=WECHAT_CONVERSATION_PREFIX)


async def push_staff_replies(
    *,
    settings: WechatSettings,
    api_settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
) -> int:
    """Send followers what staff wrote in their hand-off cases (and the closing words with the rating
    choices) as customer-service messages; the number of followers sent to.

    A follower does not poll like the web page, so each API worker calls this every
    `CRM_WECHAT_PUSH_INTERVAL_S`; a reply is claimed once across workers (`pending_updates`). A reply
    WeChat refuses stays in the case's transcript for staff; the follower is not sent it again.
    """
    sent = 0
    for conversation in await anyio.to_thread.run_sync(_awaiting, sessions):
        messages = await pending_updates(
            conversation=conversation,
            principal=CUSTOMER,
            settings=api_settings,
            http=http,
            sessions=sessions,
        )
        if not messages:
            continue
        openid = conversation.removeprefix(WECHAT_CONVERSATION_PREFIX)
        _remember_choices(openid, messages)
        await _send_texts(split_message(render_text(messages)), openid, settings)
        sent += 1
    return sent


async def _push_forever(
    settings: WechatSettings,
    api_settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
) -> None:
    while True:
        await asyncio.sleep(settings.push_interval_s)
        try:
            await push_staff_replies(
                settings=settings, api_settings=api_settings, http=http, sessions=sessions
            )
        except SQLAlchemyError as exc:
            logger.warning("wechat: staff replies not pushed this time (%s)", type(exc).__name__)


def start_pusher(
    api_settings: ApiSettings, http: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> "asyncio.Task[None] | None":
    """The API worker's task pushing staff replies to followers; None while the channel is off or
    cannot send (no AppID/AppSecret)."""
    settings = get_wechat_settings()
    if settings.token is None or wechat_api_client(settings) is None:
        return None
    return asyncio.create_task(_push_forever(settings, api_settings, http, sessions), name="wechat-push")
