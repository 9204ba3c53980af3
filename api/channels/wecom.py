"""The WeCom (企业微信) app for staff: `GET|POST /channels/wecom`.

WeCom calls this URL for every message a member of the company sends to its self-built app
(docs/channels.md). Every callback is encrypted with the app's EncodingAESKey and signed with its
Token (`msg_signature` over the ciphertext): `wechatpy.enterprise.crypto.WeChatCrypto` checks and
decrypts it, and encrypts the passive reply. The URL verification (`GET`) answers the decrypted
`echostr`. A bad signature is 403 and reaches no one.

The member (`FromUserName`, their WeCom userid) is an employee only when an administrator linked
them (`crmbot user link-wecom`; `crm_store.wecom_links.wecom_actor`): their text, or a voice
message's speech recognition, is then one turn of `staff:<employee_id>:wecom` through
`api.gateway.chat_turn` with the role, employee id and scope of that employee, exactly as if they
had signed in on the web page: a salesperson logs visits and reads the 360 view of their own
customers. An unknown member, or an employee without a sign-in account, gets a polite answer to ask
the administrator, and nothing else happens.

WeCom waits 5 s and then retries (three times), so, as on WeChat (api/channels/wechat.py):

* each message is taken once by its MsgId, whichever API worker gets it
  (`crm_store.wechat_links.first_seen`, key `wecom:<MsgId>`, apart from WeChat's MsgIds): a retry
  is answered with an empty body and never reaches Rasa again;
* the turn has `CRM_WECOM_REPLY_BUDGET_S` (4 s): in time, its text is the passive reply; late, the
  callback is answered at once and the reply goes out when ready as an app message
  (`crm_store.wecom_app.send_app_text`: `message/send` with the AgentId, token cached).

The bot's messages are shown as on WeChat (`api.channels.text_replies`: buttons as "回复 1 …"
lines, a member's "1" sent as that button's payload) and cut at WeCom's 2,048 bytes: the first part
is the passive reply, the rest follow as app messages, in order.

Without `CRM_WECOM_TOKEN` the routes answer 404. Userids never reach the logs in clear.
"""

import logging
from functools import partial
from typing import Annotated, Final

import anyio.to_thread
import httpx
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.enterprise.messages import TextMessage, VoiceMessage
from wechatpy.enterprise.replies import TextReply
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.messages import BaseMessage

from api.channels.callbacks import BAD_REQUEST, FORBIDDEN, MAX_BODY_BYTES, NOT_FOUND, plain, take_once
from api.channels.text_replies import ButtonChoices, ButtonChoicesDep, render_text, reply_within
from api.deps import HttpClientDep, SessionFactoryDep, SettingsDep
from api.gateway import UNAVAILABLE_REPLY, chat_turn, conversation_id, sender_tag
from api.texts import wording
from crm_store.access import Actor
from crm_store.errors import Forbidden, NotFound
from crm_store.settings import ApiSettings, WecomSettings, get_wecom_settings
from crm_store.wecom_app import send_app_text
from crm_store.wecom_links import MAX_USERID_CHARS, wecom_actor

__all__ = [
    "CHANNEL",
    "INACTIVE_REPLY",
    "NOT_LINKED_REPLY",
    "UNSUPPORTED_REPLY",
    "router",
]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/channels/wecom", tags=["channels"])

CHANNEL: Final = "wecom"
NO_REPLY: Final = ""
"""What WeCom expects from a callback that gets no passive reply (it then shows nothing)."""
_SEEN_PREFIX: Final = "wecom:"

# The channel's own words (api/texts.yml); the bot's come from Rasa's domain.
NOT_LINKED_REPLY: Final = wording("wecom.not_linked")
INACTIVE_REPLY: Final = wording("wecom.inactive")
UNSUPPORTED_REPLY: Final = wording("wecom.unsupported")

WecomSettingsDep = Annotated[WecomSettings, Depends(get_wecom_settings)]


def _crypto(settings: WecomSettings) -> WeChatCrypto | None:
    """The app's crypto, or None when the channel is off (no Token)."""
    if not settings.callbacks_on or settings.token is None or settings.aes_key is None:
        return None
    return WeChatCrypto(
        settings.token.get_secret_value(), settings.aes_key.get_secret_value(), settings.corp_id or ""
    )


@router.get("", summary="WeCom's URL verification (echostr)", response_class=PlainTextResponse)
async def verify_url(
    settings: WecomSettingsDep,
    msg_signature: Annotated[str, Query(max_length=64)] = "",
    timestamp: Annotated[str, Query(max_length=32)] = "",
    nonce: Annotated[str, Query(max_length=64)] = "",
    echostr: Annotated[str, Query(max_length=1024)] = "",
) -> PlainTextResponse:
    """Answer the decrypted `echostr` when the signature is the app's (接收消息's 保存)."""
    crypto = _crypto(settings)
    if crypto is None:
        return plain(*NOT_FOUND)
    try:
        echo = crypto.check_signature(msg_signature, timestamp, nonce, echostr)
    except (InvalidSignatureException, InvalidCorpIdException):
        return plain(*FORBIDDEN)
    except Exception as exc:  # noqa: BLE001  # an undecryptable echostr is the sender's fault
        logger.info("wecom: undecryptable echostr (%s)", type(exc).__name__)
        return plain(*BAD_REQUEST)
    return PlainTextResponse(echo if isinstance(echo, str) else bytes(echo).decode("utf-8", "replace"))


def _principal(factory: sessionmaker[Session], userid: str) -> Actor:
    with factory() as session:
        return wecom_actor(session, userid)


def _user_text(message: BaseMessage) -> str | None:
    """What the member said, or None for a message the channel does not take."""
    if isinstance(message, TextMessage):
        return str(message.content or "")
    if isinstance(message, VoiceMessage):
        return str(message.recognition) if message.recognition else None
    return None


@router.post("", summary="A member's message to the app, as WeCom calls it", response_class=Response)
async def callback(
    request: Request,
    background: BackgroundTasks,
    settings: WecomSettingsDep,
    api_settings: SettingsDep,
    http: HttpClientDep,
    sessions: SessionFactoryDep,
    choices: ButtonChoicesDep,
    msg_signature: Annotated[str, Query(max_length=64)] = "",
    timestamp: Annotated[str, Query(max_length=32)] = "",
    nonce: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Answer one callback: an encrypted passive reply, or an empty body (a later reply, or none)."""
    crypto = _crypto(settings)
    if crypto is None:
        return plain(*NOT_FOUND)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return plain(*BAD_REQUEST)
    try:
        xml = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
    except (InvalidSignatureException, InvalidCorpIdException):
        return plain(*FORBIDDEN)
    except Exception as exc:  # noqa: BLE001  # malformed XML, no Encrypt, bad base64 …: never a 500
        logger.info("wecom: undecryptable callback (%s)", type(exc).__name__)
        return plain(*BAD_REQUEST)
    try:
        message = parse_message(xml)
        userid = str(message.source or "")
    except Exception as exc:  # noqa: BLE001  # malformed XML inside, a missing MsgType …
        logger.info("wecom: malformed callback (%s)", type(exc).__name__)
        return plain(*BAD_REQUEST)
    if not userid or len(userid) > MAX_USERID_CHARS:
        return plain(*BAD_REQUEST)
    member = sender_tag(f"{_SEEN_PREFIX}{userid}")

    def reply(text: str) -> Response:
        xml_reply = TextReply(
            source=message.target, target=message.source, content=text, agent=message.agent
        ).render()
        sealed = crypto.encrypt_message(xml_reply, nonce, timestamp)
        return Response(content=sealed, media_type="application/xml")

    if message.type == "event" or not message.id:
        return PlainTextResponse(NO_REPLY)  # entering the app, menu views …: nothing to answer
    try:
        new = await anyio.to_thread.run_sync(take_once, sessions, f"{_SEEN_PREFIX}{message.id}")
    except SQLAlchemyError as exc:
        # Without the store a retry cannot be told apart: better no answer than two (WeCom retries).
        logger.warning("wecom: callback store unavailable for #%s (%s)", member, type(exc).__name__)
        return PlainTextResponse(NO_REPLY)
    if not new:
        logger.info("wecom: repeated callback for #%s answered once already", member)
        return PlainTextResponse(NO_REPLY)

    try:
        principal = await anyio.to_thread.run_sync(_principal, sessions, userid)
    except NotFound:
        logger.info("wecom: message from #%s, who is linked to no employee", member)
        return reply(NOT_LINKED_REPLY)
    except Forbidden:
        logger.info("wecom: message from #%s, whose employee has no active account", member)
        return reply(INACTIVE_REPLY)
    except SQLAlchemyError as exc:
        logger.warning("wecom: employee lookup failed for #%s (%s)", member, type(exc).__name__)
        return reply(UNAVAILABLE_REPLY)
    text = _user_text(message)
    if text is None:
        return reply(UNSUPPORTED_REPLY)

    conversation = conversation_id(principal, CHANNEL)
    turn = _turn(
        conversation,
        await choices.chosen(conversation, text),
        principal,
        api_settings=api_settings,
        http=http,
        sessions=sessions,
        choices=choices,
    )
    passive = await reply_within(
        turn,
        budget_s=settings.reply_budget_s,
        background=background,
        send=partial(send_app_text, settings, userid),
        channel=CHANNEL,
        subject=member,
    )
    return reply(passive) if passive is not None else PlainTextResponse(NO_REPLY)


async def _turn(
    conversation: str,
    text: str,
    principal: Actor,
    *,
    api_settings: ApiSettings,
    http: httpx.AsyncClient,
    sessions: sessionmaker[Session],
    choices: ButtonChoices,
) -> str:
    """One turn through the gateway, as this employee; answers the text to send back."""
    result = await chat_turn(
        conversation=conversation,
        text=text,
        principal=principal,
        channel=CHANNEL,
        metadata=None,
        settings=api_settings,
        http=http,
        sessions=sessions,
    )
    await choices.remember(conversation, result.messages)
    return render_text(result.messages) or UNAVAILABLE_REPLY
