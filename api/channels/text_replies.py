"""The bot's answers on text-only platforms (WeChat, WeCom): one text, numbered buttons, 2,048 bytes.

WeChat's and WeCom's chats show plain text only, so the bot's messages (the shape of Rasa's REST
channel) become one text (`render_text`): texts, image links, and buttons as numbered lines
("回复 1 查订单"). A user's bare "1" then means that button: `ButtonChoices` remembers each
conversation's last buttons for `CHOICES_TTL_S` and `chosen` turns the digit into the button's
payload. Both platforms cut a text at 2,048 bytes (`split_message`).

With `CRM_REDIS_URL` the choices live in Redis, so that the worker that gets the "1" knows the
buttons another worker showed; without it, in this process's memory (one API worker). When Redis
cannot be reached, a digit is sent as typed (the bot then asks again): never an error to the user.
Keys hold a digest of the conversation, never the id itself.

Both platforms wait about 5 s for a callback's answer: `reply_within` gives the turn its budget
and answers its first part passively, the rest (or the whole answer, when late) going out through
the platform's message API in order, in the background (`send_in_order`).
"""

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Final

import anyio.to_thread
from fastapi import BackgroundTasks, Depends, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.texts import wording
from crm_store.errors import Unavailable

__all__ = [
    "BUTTON_LINE",
    "CHOICES_TTL_S",
    "IMAGE_LINE",
    "MAX_TEXT_BYTES",
    "ButtonChoices",
    "ButtonChoicesDep",
    "SendText",
    "get_button_choices",
    "render_text",
    "reply_within",
    "send_in_order",
    "split_message",
]

logger = logging.getLogger(__name__)

BUTTON_LINE: Final = wording("text_replies.button_line")
IMAGE_LINE: Final = wording("text_replies.image_line")
MAX_TEXT_BYTES: Final = 2048
"""The limit of one text message on WeChat (passive reply, customer-service message) and WeCom, in
UTF-8 bytes."""
CHOICES_TTL_S: Final = 30 * 60
"""How long a chat's numbered buttons can be chosen by their number."""
_MEMORY_MAX: Final = 10_000
_KEY_PREFIX: Final = "crm-choices:"
_REDIS_TIMEOUT_S: Final = 0.5


def render_text(messages: list[dict[str, Any]]) -> str:
    """The bot's messages as one text: texts, image links, buttons as "回复 1 …" lines."""
    lines: list[str] = []
    for message in messages:
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            lines.append(text.strip())
        image = message.get("image")
        if isinstance(image, str) and image:
            lines.append(IMAGE_LINE.format(url=image))
        for number, button in enumerate(_buttons(message), start=1):
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


def _buttons(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    buttons = message.get("buttons") or []
    return [b for b in buttons if isinstance(b, Mapping)] if isinstance(buttons, list) else []


def _payloads(messages: list[dict[str, Any]]) -> list[str]:
    """The payloads of the messages' buttons, numbered in the order `render_text` shows them."""
    return [str(b.get("payload") or b.get("title") or "") for m in messages for b in _buttons(m)]


def _key(conversation: str) -> str:
    return _KEY_PREFIX + hashlib.sha256(conversation.encode()).hexdigest()[:32]


class ButtonChoices:
    """Each conversation's last numbered buttons: in Redis (shared by workers) or in memory."""

    def __init__(self, redis: Redis | None = None) -> None:
        self._redis = redis
        self._memory: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, redis_url: str | None) -> "ButtonChoices":
        if redis_url is None:
            return cls()
        timeout = _REDIS_TIMEOUT_S
        return cls(Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout))

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def remember(self, conversation: str, messages: list[dict[str, Any]]) -> None:
        """Keep the buttons these messages show (forget the last ones when they show none)."""
        payloads = _payloads(messages)
        key = _key(conversation)
        if self._redis is not None:
            try:
                if payloads:
                    await self._redis.set(key, json.dumps(payloads, ensure_ascii=False), ex=CHOICES_TTL_S)
                else:
                    await self._redis.delete(key)
            except RedisError as exc:
                logger.warning("button choices not kept: Redis unavailable (%s)", type(exc).__name__)
            return
        with self._lock:
            if not payloads:
                self._memory.pop(key, None)
                return
            if len(self._memory) >= _MEMORY_MAX:
                self._memory.clear()  # crude but bounded; a lost choice is sent as the plain digit
            self._memory[key] = (time.monotonic(), payloads)

    async def chosen(self, conversation: str, text: str) -> str:
        """The payload of the button numbered `text`, or `text` itself when it chooses none."""
        stripped = text.strip()
        if not stripped.isdecimal() or len(stripped) > 3:
            return text
        payloads = await self._recall(_key(conversation))
        number = int(stripped)
        return payloads[number - 1] if 1 <= number <= len(payloads) else text

    async def _recall(self, key: str) -> list[str]:
        if self._redis is not None:
            try:
                stored = await self._redis.get(key)
            except RedisError as exc:
                logger.warning("button choices not read: Redis unavailable (%s)", type(exc).__name__)
                return []
            loaded = json.loads(stored) if stored else []
            return [str(p) for p in loaded] if isinstance(loaded, list) else []
        with self._lock:
            remembered = self._memory.get(key)
        if remembered is None or time.monotonic() - remembered[0] > CHOICES_TTL_S:
            return []
        return remembered[1]


# async although it waits for nothing: a plain `def` dependency costs a worker-thread hop (api/deps.py).
async def get_button_choices(request: Request) -> ButtonChoices:
    """The app's button choices, made in the lifespan (in memory for an app started without it)."""
    choices = getattr(request.app.state, "button_choices", None)
    if not isinstance(choices, ButtonChoices):
        choices = request.app.state.button_choices = ButtonChoices()
    return choices


ButtonChoicesDep = Annotated[ButtonChoices, Depends(get_button_choices)]


SendText = Callable[[str], None]
"""Sends one text to the chat's user through the platform's API (blocking); raises `Unavailable`."""


async def send_in_order(texts: list[str], send: SendText, *, channel: str, subject: str) -> None:
    """Send texts one after the other; stop at the first one the platform refuses (logged)."""
    for text in texts:
        try:
            await anyio.to_thread.run_sync(send, text)
        except Unavailable as exc:
            logger.warning("%s: reply for #%s not delivered (%s)", channel, subject, exc.data.get("reason"))
            return


async def _when_ready(turn: "asyncio.Future[str]", send: SendText, *, channel: str, subject: str) -> None:
    try:
        text = await turn
    except Exception as exc:  # noqa: BLE001  # a background task has no caller to raise to
        logger.error("%s: late turn of #%s failed (%s)", channel, subject, type(exc).__name__)
        return
    await send_in_order(split_message(text), send, channel=channel, subject=subject)


async def reply_within(
    turn: Awaitable[str],
    *,
    budget_s: float,
    background: BackgroundTasks,
    send: SendText,
    channel: str,
    subject: str,
) -> str | None:
    """The passive reply: the first part of the turn's answer when it came within `budget_s`, the
    rest sent after it; None when the turn is late, and the whole answer is sent when ready."""
    task = asyncio.ensure_future(turn)
    done, _pending = await asyncio.wait({task}, timeout=budget_s)
    if done:
        first, *rest = split_message(task.result())
        if rest:
            background.add_task(send_in_order, rest, send, channel=channel, subject=subject)
        return first
    logger.info("%s: turn of #%s over the reply budget; replying later", channel, subject)
    background.add_task(_when_ready, task, send, channel=channel, subject=subject)
    return None
