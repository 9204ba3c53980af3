"""`POST /api/chat`: the only way a user's message reaches Rasa.

The gateway cleans and bounds the message, stamps the caller's role into the metadata
(clients can never choose it) and forwards the turn to Rasa's REST channel on loopback,
which passes the metadata on to the actions. Whatever goes wrong on the way, the client
gets a list of bot messages back.
"""

import hashlib
import logging
import re
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import HttpClientDep, PrincipalDep, SettingsDep
from api.schemas import BotMessage, ChatRequest

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/chat", tags=["chat"])

RASA_WEBHOOK_PATH = "/webhooks/rest/webhook"

EMPTY_MESSAGE_REPLY = "您好像还没有输入内容，请告诉我您想咨询什么～"
TOO_LONG_REPLY = "您的消息有点长（超过 {limit} 字），请精简后再发给我，或分几次发送。"
UNAVAILABLE_REPLY = "抱歉，小助手暂时无法回复，请稍后再试。"

# C0/C1 control characters except "\n", plus lone surrogates: a JSON body may carry
# "\ud800", which Python accepts but cannot encode as UTF-8 when forwarding.
_UNWANTED_CHARS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_message(text: str) -> str:
    """Normalise line ends and drop control characters, keeping newlines.

    Tabs become spaces rather than vanishing, so "a<TAB>b" does not turn into "ab".

    Args:
        text: The message as the client sent it.

    Returns:
        The message with only printable characters and "\\n" line breaks.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _UNWANTED_CHARS.sub("", text)


def sender_tag(sender: str) -> str:
    """Return a short, stable hash of a sender id, to correlate log lines without the id."""
    return hashlib.sha256(sender.encode("utf-8")).hexdigest()[:12]


def _reply(text: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=[{"text": text}])


def _unavailable(reason: str, sender: str) -> JSONResponse:
    logger.warning("chat turn failed for sender #%s: %s", sender_tag(sender), reason)
    return _reply(UNAVAILABLE_REPLY, status_code=503)


@router.post(
    "",
    summary="Send one message to 小助手",
    response_model=list[BotMessage],
    responses={503: {"model": list[BotMessage], "description": "Rasa is unavailable; the body says so."}},
)
async def chat(
    body: ChatRequest, settings: SettingsDep, http: HttpClientDep, principal: PrincipalDep
) -> JSONResponse:
    """Answer the bot's messages for this turn, in the shape of Rasa's REST channel.

    Empty and over-long messages are answered politely without reaching Rasa. When Rasa
    is down the status is 503 and the body is still a list with one apology.
    """
    message = clean_message(body.message)
    if not message.strip():
        return _reply(EMPTY_MESSAGE_REPLY)
    if len(message) > settings.max_message_chars:
        return _reply(TOO_LONG_REPLY.format(limit=settings.max_message_chars))

    metadata: dict[str, Any] = {
        **(body.metadata or {}),
        "role": principal.role,
        "principal_id": principal.principal_id,
    }
    payload = {"sender": body.sender, "message": message, "metadata": metadata}
    url = settings.rasa_url.rstrip("/") + RASA_WEBHOOK_PATH
    try:
        response = await http.post(url, json=payload, timeout=settings.rasa_timeout_s)
    except httpx.HTTPError as exc:
        # The exception text names the URL and the OS error, never the request body.
        return _unavailable(f"{type(exc).__name__}: {exc}", body.sender)
    if response.status_code != 200:
        return _unavailable(f"Rasa answered HTTP {response.status_code}", body.sender)
    try:
        bot_messages = response.json()
    except ValueError:
        return _unavailable("Rasa answered a body that is not JSON", body.sender)
    if not isinstance(bot_messages, list) or not all(isinstance(m, dict) for m in bot_messages):
        return _unavailable("Rasa answered JSON that is not a list of messages", body.sender)
    return JSONResponse(content=bot_messages)
