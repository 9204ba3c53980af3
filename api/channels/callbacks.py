"""What the callbacks of Tencent's platforms (WeChat, WeCom) share: their size bound, their plain
refusals, and taking each message once across API workers (`crm_store.wechat_links.first_seen`)."""

from typing import Final

from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.wechat_links import first_seen, purge_seen

__all__ = ["BAD_REQUEST", "FORBIDDEN", "MAX_BODY_BYTES", "NOT_FOUND", "plain", "take_once"]

MAX_BODY_BYTES: Final = 64 * 1024
"""A callback is a few hundred bytes; anything far larger is not from the platform."""
NOT_FOUND: Final = (404, "not found")
FORBIDDEN: Final = (403, "invalid signature")
BAD_REQUEST: Final = (400, "bad request")


def plain(status: int, text: str) -> PlainTextResponse:
    """A refusal the platform's servers read (never a user): no details."""
    return PlainTextResponse(text, status_code=status)


def take_once(factory: sessionmaker[Session], key: str) -> bool:
    """True for the first caller to take this message's key, False for a retry or another worker's copy."""
    now = clock.now()
    with factory.begin() as session:
        new = first_seen(session, key, now=now)
        purge_seen(session, now=now)
    return new
