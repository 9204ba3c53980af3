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
  customer-service message API (`WeChatClient.message.send_text`; the access token is shared by
  the API workers in Redis with `CRM_REDIS_URL`, `crm_store.tencent_api`, else kept per process).

A text has at most 2,048 bytes: a longer answer is cut between lines (`api.channels.text_replies`),
its first part is the passive reply and the rest follow as customer-service messages, in order.
Buttons become numbered lines ("回复 1 …"); a follower's "1" is sent as that button's payload
(`ButtonChoices`, in Redis with `CRM_REDIS_URL`, so that any worker knows them). "解绑" removes the
follower's link to a customer; the link is made when the follower verified themselves in the chat
(the bot's own audit of `verify_customer` for this conversation, read after each turn), and a
linked follower's next dialogue session starts verified (the bot's `action_session_start`,
actions/identity.py).

Without `CRM_WECHAT_TOKEN` the routes answer 404. Openids never reach the logs in clear.
"""

import asyncio
import logging
from datetime import timedelta
from functools import partial
from typing import Annotated, Final

import anyio.to_thread
import httpx
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import ClickEvent, SubscribeEvent
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import BaseMessage, TextMessage, VoiceMessage
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from api.channels.callbacks import BAD_REQUEST, FORBIDDEN, MAX_BODY_BYTES, NOT_FOUND, plain, take_once
from api.channels.text_replies import (
    ButtonChoices,
    ButtonChoicesDep,
    SendText,
    render_text,
    reply_within,
    send_in_order,
    split_message,
)
from api.deps import HttpClientDep, SessionFactoryDep, SettingsDep
from api.gateway import UNAVAILABLE_REPLY, Turn, chat_turn, pending_updates, sender_tag
from api.texts import wording
from crm_store import clock
from crm_store.access import CUSTOMER
from crm_store.handoff import conversations_awaiting_replies
from crm_store.identity import verified_customer_of
from crm_store.settings import ApiSettings, WechatSettings, get_api_settings, get_wechat_settings
from crm_store.wechat_app import send_service_text, wechat_api_client
from crm_store.wechat_links import (
    WECHAT_CONVERSATION_PREFIX,
    last_unlinked_at,
    link,
    linked_customer,
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
    "push_staff_replies",
    "start_pusher",
    "router",
]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/channels/wechat", tags=["channels"])

CHANNEL: Final = "wechat"
SUCCESS: Final = "success"
"""What WeChat expects from a callback that gets no passive reply (it then shows nothing)."""
UNLINK_COMMAND: Final = wording("wechat.unlink_command")
VERIFIED_WINDOW: Final = timedelta(minutes=60)
"""A verification in the last hour belongs to the current dialogue session (crm_store.identity)."""

# The channel's own words (api/texts.yml); the bot's come from Rasa's domain.
UNSUPPORTED_REPLY: Final = wording("wechat.unsupported")
WELCOME_REPLY: Final = wording("wechat.welcome")
UNLINKED_REPLY: Final = wording("wechat.unlinked")
NOT_LINKED_REPLY: Final = wording("wechat.not_linked")

WechatSettingsDep = Annotated[WechatSettings, Depends(get_wechat_settings)]


def _message_key(message: BaseMessage) -> str:
    if message.id:
        return str(message.id)
    # Events have no MsgId: WeChat's own advice is FromUserName + CreateTime (here as a pseudonym).
    return f"e:{sender_tag(f'{message.source}:{message.time}:{message.type}')}"


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
        return plain(*NOT_FOUND)
    except _Forbidden:
        return plain(*FORBIDDEN)
    return PlainTextResponse(echostr)


@router.post("", summary="A follower's message, as WeChat calls it", response_class=Response)
async def callback(
    request: Request,
    background: BackgroundTasks,
    settings: WechatSettingsDep,
    api_settings: SettingsDep,
    http: HttpClientDep,
    sessions: SessionFactoryDep,
    choices: ButtonChoicesDep,
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
        return plain(*NOT_FOUND)
    except _Forbidden:
        return plain(*FORBIDDEN)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return plain(*BAD_REQUEST)

    crypto: WeChatCrypto | None = None
    if settings.aes_key is not None:
        if encrypt_type.lower() != "aes":
            return plain(*BAD_REQUEST)  # safe mode: WeChat always encrypts
        try:
            crypto = WeChatCrypto(token, settings.aes_key.get_secret_value(), settings.app_id or "")
            xml = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException):
            return plain(*FORBIDDEN)
        except Exception as exc:  # noqa: BLE001  # any undecryptable body is the sender's fault
            logger.info("wechat: undecryptable callback (%s)", type(exc).__name__)
            return plain(*BAD_REQUEST)
    else:
        xml = body
    try:
        message = parse_message(xml)
        openid = str(message.source or "")
    except Exception as exc:  # noqa: BLE001  # malformed XML, a missing MsgType …: never a 500
        logger.info("wechat: malformed callback (%s)", type(exc).__name__)
        return plain(*BAD_REQUEST)
    if not openid or len(openid) > 64:
        return plain(*BAD_REQUEST)
    subject = sender_tag(wechat_conversation(openid))

    def reply(text: str) -> Response:
        xml_reply = TextReply(source=message.target, target=message.source, content=text).render()
        if crypto is not None:
            xml_reply = crypto.encrypt_message(xml_reply, nonce, timestamp)
        return Response(content=xml_reply, media_type="application/xml")

    try:
        new = await anyio.to_thread.run_sync(take_once, sessions, _message_key(message))
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

    turn = _turn(
        openid,
        await choices.chosen(wechat_conversation(openid), text),
        api_settings=api_settings,
        http=http,
        sessions=sessions,
        choices=choices,
    )
    passive = await reply_within(
        turn,
        budget_s=settings.reply_budget_s,
        background=background,
        send=_sender(settings, openid),
        channel=CHANNEL,
        subject=subject,
    )
    return reply(passive) if passive is not None else PlainTextResponse(SUCCESS)


async def _turn(
    openid: str,
    text: str,
    *,
    api_settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
    choices: ButtonChoices,
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
    await choices.remember(wechat_conversation(openid), result.messages)
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


def _sender(settings: WechatSettings, openid: str) -> SendText:
    """Customer-service messages to this follower, the token shared in Redis when there is one."""
    return partial(send_service_text, settings, openid, redis_url=get_api_settings().redis_url)


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
    choices: ButtonChoices,
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
        await choices.remember(conversation, messages)
        await send_in_order(
            split_message(render_text(messages)),
            _sender(settings, openid),
            channel=CHANNEL,
            subject=sender_tag(conversation),
        )
        sent += 1
    return sent


async def _push_forever(
    settings: WechatSettings,
    api_settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
    choices: ButtonChoices,
) -> None:
    while True:
        await asyncio.sleep(settings.push_interval_s)
        try:
            await push_staff_replies(
                settings=settings, api_settings=api_settings, http=http, sessions=sessions, choices=choices
            )
        except SQLAlchemyError as exc:
            logger.warning("wechat: staff replies not pushed this time (%s)", type(exc).__name__)
        except Exception as exc:  # noqa: BLE001  # a worker's only pusher must outlive one bad round
            # Only the type: an error's text may hold a URL with a follower's conversation id.
            logger.error("wechat: pushing staff replies failed (%s); next round retries", type(exc).__name__)


def start_pusher(
    api_settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
    choices: ButtonChoices,
) -> "asyncio.Task[None] | None":
    """The API worker's task pushing staff replies to followers; None while the channel is off or
    cannot send (no AppID/AppSecret)."""
    settings = get_wechat_settings()
    if settings.token is None or wechat_api_client(settings) is None:
        return None
    return asyncio.create_task(
        _push_forever(settings, api_settings, http, sessions, choices), name="wechat-push"
    )
