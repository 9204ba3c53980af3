"""The words of a hand-off that the customer sees without Rasa, and the messages made of them.

While a person has the conversation, `crm_store.handoff.relay_turn` decides what happens to a turn
(recorded for staff, staff messages handed over); the chat answers without Rasa, so the words come
from here. They are the bot's own domain responses, read once from bot/domain/*.yml, so that one
place holds every sentence the assistant says:

| what                                      | response                  |
|-------------------------------------------|---------------------------|
| the holding reply while nobody answered   | `utter_handoff_holding`   |
| the closing words queued when staff close | `utter_handoff_closing`   |
| the 1–5 buttons with unrated closing words| buttons of `utter_ask_rating` |

The rating buttons send `/rate{"rating":"N"}` through `/api/chat` to Rasa's rating action.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

from crm_store.handoff import Delivery, RelayTurn
from crm_store.settings import PROJECT_ROOT

BOT_DOMAIN_DIR: Final = PROJECT_ROOT / "bot" / "domain"

HOLDING_RESPONSE: Final = "utter_handoff_holding"
CLOSING_RESPONSE: Final = "utter_handoff_closing"
RATING_RESPONSE: Final = "utter_ask_rating"


@dataclass(frozen=True)
class HandoffWords:
    """The hand-off's words, as the bot's domain has them."""

    holding: str
    closing: str
    rating_buttons: tuple[Mapping[str, str], ...]


def _responses(domain_dir: Path) -> dict[str, Any]:
    # Rasa merges a domain directory file by file; responses have unique names across files.
    merged: dict[str, Any] = {}
    for file in sorted(domain_dir.glob("*.yml")):
        merged.update((yaml.safe_load(file.read_text(encoding="utf-8")) or {}).get("responses") or {})
    return merged


@cache
def handoff_words(domain_dir: Path = BOT_DOMAIN_DIR) -> HandoffWords:
    """The holding reply, the closing words and the rating buttons, read from the domain on first use.

    Raises:
        KeyError: The domain lacks one of the responses (a broken checkout, found by the tests).
    """
    responses = _responses(domain_dir)
    rating = responses[RATING_RESPONSE][0]
    return HandoffWords(
        holding=str(responses[HOLDING_RESPONSE][0]["text"]),
        closing=str(responses[CLOSING_RESPONSE][0]["text"]),
        rating_buttons=tuple(
            {"title": str(button["title"]), "payload": str(button["payload"])} for button in rating["buttons"]
        ),
    )


def _message(sender: str, delivery: Delivery, words: HandoffWords) -> dict[str, Any]:
    message: dict[str, Any] = {"recipient_id": sender, "text": delivery.text}
    if delivery.asks_rating:
        message["buttons"] = [dict(button) for button in words.rating_buttons]
    return message


def relay_messages(sender: str, turn: RelayTurn) -> list[dict[str, Any]]:
    """The turn's staff messages as bot messages (REST channel shape), or the holding reply."""
    if not turn.paused and not turn.deliveries:
        return []
    words = handoff_words()
    if turn.holding:
        return [{"recipient_id": sender, "text": words.holding}]
    return [_message(sender, delivery, words) for delivery in turn.deliveries]
