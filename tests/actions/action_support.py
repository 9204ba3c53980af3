"""Trackers shaped as Rasa sends them to the action server, and what Rasa makes of the answers."""

import re
from typing import Any

from rasa_sdk import Tracker


def make_tracker(
    *,
    slots: dict[str, Any] | None = None,
    text: str = "",
    active_loop: str | None = None,
    just_extracted: dict[str, Any] | None = None,
    intent: str = "check_order_status",
    sender_id: str = "test-sender",
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
        sender_id=sender_id,
        slots={**(slots or {}), **(just_extracted or {})},
        latest_message=latest_message,
        events=events,
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")


def _interpolate(template: str, values: dict[str, Any]) -> str:
    # rasa.core.nlg.interpolator.interpolate_text: "{name}" filled, "{{" and "}}" are braces.
    try:
        return _PLACEHOLDER.sub(r"{0[\1]}", template).format(values)
    except (KeyError, IndexError, ValueError):
        return template


def rendered_buttons(domain: dict[str, Any], message: dict[str, Any]) -> list[dict[str, str]]:
    """The buttons the customer sees for one dispatched message, put together as Rasa 3.6 does.

    `RemoteAction._utter_responses`: the response's own buttons, filled with the message's
    variables, then the buttons the action passed.
    """
    own: list[dict[str, str]] = []
    if message.get("response"):
        variation = domain["responses"][message["response"]][0]
        values = {k: v for k, v in message.items() if k not in ("response", "buttons") and v is not None}
        own = [
            {"title": _interpolate(b["title"], values), "payload": _interpolate(b["payload"], values)}
            for b in variation.get("buttons") or []
        ]
    return own + list(message.get("buttons") or [])
