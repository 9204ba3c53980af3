"""Trackers shaped as Rasa sends them to the action server."""

from typing import Any

from rasa_sdk import Tracker


def make_tracker(
    *,
    slots: dict[str, Any] | None = None,
    text: str = "",
    active_loop: str | None = None,
    just_extracted: dict[str, Any] | None = None,
    intent: str = "check_order_status",
) -> Tracker:
    """A tracker after the user's turn `text`.

    `just_extracted` are the slot candidates that Rasa appends after the user's message when a
    form runs; a form validation action validates exactly those.
    """
    latest_message = {"text": text, "intent": {"name": intent}, "entities": []}
    events: list[dict[str, Any]] = [{"event": "user", "text": text, "parse_data": latest_message}]
    events += [
        {"event": "slot", "name": name, "value": value} for name, value in (just_extracted or {}).items()
    ]
    return Tracker(
        sender_id="test-sender",
        slots={**(slots or {}), **(just_extracted or {})},
        latest_message=latest_message,
        events=events,
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )
