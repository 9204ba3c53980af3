"""The tracker store (bot/tracker_store.py) keeps Rasa's rows: each of it and Rasa's own SQL store
reads what the other wrote, on SQLite and PostgreSQL, in the bot environment."""

import textwrap

import pytest
from e2e_stack import json_from_rasa_environment
from sqlalchemy import Engine

from crm_store.settings import StoreSettings
from crmbot.stack import rasa_tracker_url

pytestmark = pytest.mark.rasa

# A conversation of two sessions, written turn by turn by one store and read by both.
ROUND_TRIP = textwrap.dedent(
    """
    import asyncio, json, sys
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import (
        ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker
    from bot.tracker_store import StrictSQLTrackerStore

    domain = Domain.from_dict({
        "intents": ["greet", "ask_order"],
        "entities": ["order_id"],
        "slots": {"order_id": {"type": "text", "mappings": [{"type": "from_entity", "entity": "order_id"}]}},
        "actions": ["action_order_status"],
    })
    url = sys.argv[1]
    stores = {"rasa": SQLTrackerStore(domain, host=url), "ours": StrictSQLTrackerStore(domain, host=url)}

    def session_start():
        return [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]

    turns = [
        [*session_start(), UserUttered("你好", {"name": "greet", "confidence": 0.98}),
         BotUttered("您好！"), ActionExecuted("action_listen")],
        [UserUttered("查一下订单 SO20260312", {"name": "ask_order", "confidence": 0.93},
                     [{"entity": "order_id", "value": "SO20260312", "start": 6, "end": 16}]),
         SlotSet("order_id", "SO20260312"),
         ActionExecuted("action_order_status", policy="RulePolicy", confidence=1.0),
         BotUttered("您的订单已发货。", {"buttons": [{"title": "好的", "payload": "/greet"}]}),
         ActionExecuted("action_listen")],
        [*session_start(), UserUttered("在吗", {"name": "greet", "confidence": 0.71}),
         ActionExecuted("action_listen")],
    ]

    def state(tracker):
        # What a turn is predicted from: the events, and the slots they set.
        if tracker is None:
            return None
        events = [event.as_dict() for event in tracker.events]
        return json.dumps({"events": events, "slots": tracker.current_slot_values()}, sort_keys=True)

    async def main():
        found = {}
        for writer, store in stores.items():
            sender = f"written-by-{writer}"
            for turn in turns:  # as Rasa takes a turn: read the session, add the turn, save
                tracker = await store.retrieve(sender) or DialogueStateTracker(sender, domain.slots)
                for event in turn:
                    tracker.update(event)
                await store.save(tracker)
            every_event = DialogueStateTracker.from_events(sender, sum(turns, []), domain.slots)
            # The latest session starts at its `session_started`, after `action_session_start`.
            latest = DialogueStateTracker.from_events(sender, turns[-1][1:], domain.slots)
            for reader, store in stores.items():
                found[f"{writer} → {reader}"] = {
                    "latest session": state(await store.retrieve(sender)) == state(latest),
                    "all sessions": state(await store.retrieve_full_tracker(sender)) == state(every_event),
                    "unknown sender": await store.retrieve("nobody") is None,
                }
        print(json.dumps(found))

    asyncio.run(main())
    """
)


def test_our_tracker_store_and_rasas_read_what_the_other_wrote(store_engine: Engine) -> None:
    store = StoreSettings(tracker_url=None, database_url=store_engine.url.render_as_string(False))
    found = json_from_rasa_environment(ROUND_TRIP, rasa_tracker_url(store))
    everything_read = {"latest session": True, "all sessions": True, "unknown sender": True}
    assert found == {
        "ours → rasa": everything_read,
        "ours → ours": everything_read,
        "rasa → rasa": everything_read,
        "rasa → ours": everything_read,
    }
