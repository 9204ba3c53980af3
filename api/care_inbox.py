"""Care messages in the chat: the staff inbox and the customer web inbox, each message shown once.

The care scheduler marks inbox messages `sent` (`crm_store.outbox`: channel `staff_inbox` for an
employee, `web` for a customer); the chat page shows them when it polls `GET /api/chat/updates`:

- **Staff** (a signed-in employee's conversation, `staff:<employee_id>:<sender>`): their unread
  notices. Each is pushed into the Rasa conversation with Rasa's HTTP API
  (`POST /conversations/{id}/trigger_intent`, intent `care_notice`, entities `care_rule` and
  `care_text`), so the bot says `utter_care_notice` (bot/domain/care.yml) and the notice is part of
  the conversation's history. Only into a conversation that is **active**: it has a message and
  Rasa recorded an event in it within `ACTIVE_WINDOW` (half of the 60-minute session expiry of
  bot/domain/conversation.yml, so that the session is alive and no push starts a new one), and no
  form is running (a notice must not interrupt one). Otherwise, or when Rasa does not answer, the
  API words the same response itself.
- **Customers**: the web inbox of the customer this conversation proved to be (phone plus an order
  number, `crm_store.identity`) within `VERIFIED_WINDOW`, which never reaches back beyond the
  dialogue session that holds the verification. An unverified conversation gets nothing.

Each message is taken with `mark_read` before it is shown, one by one, so that two pages polling
at once never both show it: it is shown exactly once (a failed push falls back to the API's own
wording, never to silence). Nothing here logs a message or a name.
"""

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import anyio.to_thread
import httpx
import yaml
from sqlalchemy.orm import Session, sessionmaker

from api.rasa_servers import rasa_servers
from crm_store import clock
from crm_store.access import Actor
from crm_store.identity import verified_customer_of
from crm_store.outbox import InboxMessage, inbox, mark_read
from crm_store.settings import PROJECT_ROOT, ApiSettings

__all__ = [
    "ACTIVE_WINDOW",
    "CARE_NOTICE_INTENT",
    "CARE_NOTICE_RESPONSE",
    "INBOX_BATCH",
    "VERIFIED_WINDOW",
    "care_messages",
    "notice_text",
    "take_unread",
]

logger = logging.getLogger(__name__)

BOT_DOMAIN_DIR: Final = PROJECT_ROOT / "bot" / "domain"
CARE_NOTICE_INTENT: Final = "care_notice"
CARE_NOTICE_RESPONSE: Final = "utter_care_notice"
ACTIVE_WINDOW: Final = timedelta(minutes=30)
"""A staff conversation with a Rasa event this recent is active: notices are pushed into it."""
VERIFIED_WINDOW: Final = timedelta(minutes=60)
"""A verification this recent is one of the current dialogue session (its expiry, in minutes)."""
INBOX_BATCH: Final = 20
"""At most this many messages per poll; the rest come with the next polls."""


def take_unread(
    factory: sessionmaker[Session],
    *,
    employee_id: str | None = None,
    customer_id: str | None = None,
    now: datetime | None = None,
) -> list[InboxMessage]:
    """The unread messages of one inbox, each marked read here: whoever marks it shows it."""
    with factory() as session:
        unread = inbox(
            session, employee_id=employee_id, customer_id=customer_id, unread_only=True, limit=INBOX_BATCH
        )
        taken = [
            message
            for message in unread
            if mark_read(
                session, message_ids=[message.id], employee_id=employee_id, customer_id=customer_id, now=now
            )
            == 1
        ]
        session.commit()
    return taken


def _verified_customer(factory: sessionmaker[Session], conversation: str, now: datetime) -> str | None:
    with factory() as session:
        return verified_customer_of(session, conversation=conversation, since=now - VERIFIED_WINDOW)


@cache
def _notice_variants(domain_dir: Path = BOT_DOMAIN_DIR) -> tuple[tuple[str | None, str], ...]:
    """`utter_care_notice` as (care_rule or None for the default, text), read from the domain once."""
    for file in sorted(domain_dir.glob("*.yml")):
        responses = (yaml.safe_load(file.read_text(encoding="utf-8")) or {}).get("responses") or {}
        if CARE_NOTICE_RESPONSE in responses:
            variants: list[tuple[str | None, str]] = []
            for variant in responses[CARE_NOTICE_RESPONSE]:
                conditions = variant.get("condition") or []
                rule = next((str(c["value"]) for c in conditions if c.get("name") == "care_rule"), None)
                variants.append((rule, str(variant["text"])))
            return tuple(variants)
    raise KeyError(CARE_NOTICE_RESPONSE)  # a broken checkout, found by the tests


def notice_text(rule: str, text: str) -> str:
    """`utter_care_notice` for this rule, worded as Rasa would (the variant of the rule, else the default)."""
    variants = _notice_variants()
    template = next((t for r, t in variants if r == rule), None) or next(t for r, t in variants if r is None)
    return template.replace("{care_text}", text)


def _rasa_params(settings: ApiSettings) -> Mapping[str, str] | None:
    return {"token": settings.rasa_token.get_secret_value()} if settings.rasa_token else None


def _conversation_url(settings: ApiSettings, conversation: str, what: str) -> str:
    # Rasa takes the path segment as the conversation id without percent-decoding it, so the colons
    # of `staff:<employee_id>:<sender>` must stay as they are (a `%3A` would name another one).
    # Any replica reads the shared tracker store; the conversation's own one is the likeliest warm.
    server = rasa_servers(settings.rasa_servers, settings.rasa_retry_after_s).order(conversation)[0]
    return f"{server}/conversations/{quote(conversation, safe=':')}/{what}"


async def _is_active(http: httpx.AsyncClient, settings: ApiSettings, conversation: str) -> bool:
    """Whether Rasa saw this conversation within `ACTIVE_WINDOW`, with no form running."""
    try:
        response = await http.get(
            _conversation_url(settings, conversation, "tracker"),
            params={**(_rasa_params(settings) or {}), "include_events": "NONE"},
            timeout=settings.rasa_timeout_s,
        )
        tracker = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("care notice: Rasa's tracker unavailable (%s)", type(exc).__name__)
        return False
    if not isinstance(tracker, dict):
        return False
    latest = tracker.get("latest_event_time")
    message = tracker.get("latest_message") or {}
    active_loop = tracker.get("active_loop") or {}
    if not isinstance(latest, int | float) or not isinstance(message, dict) or not message.get("text"):
        return False  # a conversation nobody has written in yet (Rasa only just started its session)
    if isinstance(active_loop, dict) and active_loop.get("name"):
        return False
    # Rasa stamps events with the real time, not the CRM clock.
    return time.time() - float(latest) <= ACTIVE_WINDOW.total_seconds()


async def _push(
    http: httpx.AsyncClient, settings: ApiSettings, conversation: str, message: InboxMessage
) -> list[dict[str, Any]] | None:
    """Trigger `care_notice` in the conversation; the bot's messages, or None when Rasa failed."""
    try:
        response = await http.post(
            _conversation_url(settings, conversation, "trigger_intent"),
            params=_rasa_params(settings),
            json={
                "name": CARE_NOTICE_INTENT,
                "entities": {"care_rule": message.rule, "care_text": message.text},
            },
            timeout=settings.rasa_timeout_s,
        )
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("care notice: trigger_intent failed (%s)", type(exc).__name__)
        return None
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        logger.warning("care notice: trigger_intent answered no message")
        return None
    return messages


async def care_messages(
    factory: sessionmaker[Session],
    http: httpx.AsyncClient,
    settings: ApiSettings,
    principal: Actor,
    conversation: str,
) -> list[dict[str, Any]]:
    """The care messages this poll shows (REST channel shape), each marked read; [] when none.

    Raises:
        SQLAlchemyError: The store is unavailable (the caller answers 503).
    """
    now = clock.now()
    if principal.is_staff:
        notices = await anyio.to_thread.run_sync(
            partial(take_unread, factory, employee_id=principal.employee_id, now=now)
        )
        if not notices:
            return []
        active = await _is_active(http, settings, conversation)
        shown: list[dict[str, Any]] = []
        for notice in notices:
            pushed = await _push(http, settings, conversation, notice) if active else None
            shown += pushed or [{"recipient_id": conversation, "text": notice_text(notice.rule, notice.text)}]
        return shown

    customer_id = await anyio.to_thread.run_sync(_verified_customer, factory, conversation, now)
    if customer_id is None:
        return []
    messages = await anyio.to_thread.run_sync(partial(take_unread, factory, customer_id=customer_id, now=now))
    return [{"recipient_id": conversation, "text": message.text} for message in messages]
