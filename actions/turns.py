"""Reading the latest user turn from a tracker: what the actions of every flow need."""

from rasa_sdk import Tracker


def latest_text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "").strip()


def latest_intent(tracker: Tracker) -> str | None:
    intent = tracker.latest_message.get("intent") or {}
    return str(intent.get("name")) if intent.get("name") else None


def latest_entity(tracker: Tracker, entity: str) -> str | None:
    """The last value of `entity` in the latest message (the regex extractor and DIET may both find it)."""
    values = [e.get("value") for e in tracker.latest_message.get("entities", []) if e.get("entity") == entity]
    return str(values[-1]) if values and values[-1] is not None else None


def is_requested(tracker: Tracker, slot: str) -> bool:
    """True when the active form has just asked for `slot`."""
    return bool(tracker.get_slot("requested_slot") == slot)
