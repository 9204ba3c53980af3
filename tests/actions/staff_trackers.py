"""Trackers of staff conversations as Rasa sends them: the gateway's metadata on the user's message."""

import asyncio
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher


def staff_tracker(
    text: str,
    *,
    employee: str | None = None,
    intent: str = "inform",
    entities: dict[str, str] | None = None,
    slots: dict[str, Any] | None = None,
    requested_slot: str | None = None,
    active_loop: str | None = None,
) -> Tracker:
    """A tracker after the user's turn `text`, signed in as `employee` (None: an anonymous customer).

    The metadata is what the API gateway stamps from the token: `role` and `principal_id`. The
    role sent is "sales" for every employee: the actions must take the real role from the store.
    """
    metadata = {"role": "sales", "principal_id": employee} if employee else {"role": "customer"}
    latest_message = {
        "text": text,
        "intent": {"name": intent},
        "entities": [{"entity": name, "value": value} for name, value in (entities or {}).items()],
        "metadata": metadata,
    }
    sender = f"staff:{employee}:web-1" if employee else "web-1"
    return Tracker(
        sender_id=sender,
        slots={**(slots or {}), "requested_slot": requested_slot},
        latest_message=latest_message,
        events=[{"event": "user", "text": text, "parse_data": latest_message, "metadata": metadata}],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def run(
    action: Action, tracker: Tracker, domain: dict[str, Any]
) -> tuple[CollectingDispatcher, dict[str, Any]]:
    """Run the action; what it said, and the slots it set."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, domain))
    return dispatcher, {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m["response"] for m in dispatcher.messages if m.get("response")]


def said(dispatcher: CollectingDispatcher) -> str:
    """Everything the dispatcher sent, as one string, to look for what must never be shown."""
    return repr(dispatcher.messages)
