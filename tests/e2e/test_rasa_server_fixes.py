"""The fixes bot/rasa_server.py applies to Rasa 3.6 keep Rasa's behaviour, in the bot environment."""

import json
import textwrap
from pathlib import Path

import pytest
from e2e_stack import json_from_rasa_environment

from crmbot import paths

pytestmark = pytest.mark.rasa

# Responses of an action server: valid ones, and wrong ones Rasa must refuse with its own message.
RESPONSES = [
    {"events": [{"event": "slot", "name": "complaint_phone", "value": "13800138000"}], "responses": []},
    {"events": [], "responses": [{"response": "utter_ask_complaint_phone"}]},
    {},
    {"events": "not a list"},
    {"events": [{"name": "no event type"}]},
    {"events": [], "responses": "utter_greet"},
]

CHECK = textwrap.dedent(
    """
    import json, sys
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction
    from bot.rasa_server import apply_fixes

    def outcomes(action):
        found = []
        for response in json.loads(sys.argv[1]):
            try:
                found.append(action._validate_action_result(response))
            except ValidationError as error:
                found.append(error.message)
        return found

    action = RemoteAction("action_file_complaint", None)
    before = outcomes(action)
    apply_fixes()
    print(json.dumps({"rasa": before, "fixed": outcomes(action)}, ensure_ascii=False))
    """
)


def test_action_responses_are_judged_as_rasa_judges_them() -> None:
    outcomes = json_from_rasa_environment(CHECK, json.dumps(RESPONSES))

    assert outcomes["fixed"] == outcomes["rasa"]
    assert outcomes["rasa"][:3] == [True, True, True]
    assert all("Failed to validate Action server response" in str(o) for o in outcomes["rasa"][3:])


# Every prediction of the test and training stories, and of conversations of random intents (off
# every story, where TED is asked), by Rasa (through dask) and with the fixes (TED asked last, the
# graph run directly); and the NLU's reading of the held-out and test stories' messages, by both.
PREDICTIONS = textwrap.dedent(
    """
    import asyncio, json, random, sys
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.core.test import _create_data_generator
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
    from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.nlu.training_data.loading import load_data
    from bot import rasa_server

    agent = Agent.load(sys.argv[1])
    processor, domain = agent.processor, agent.domain
    order = rasa_server.policy_order(processor)
    dask_run, runs = DaskGraphRunner.run, []
    def fixed_run(runner, inputs=None, targets=None):
        runs.append(list(targets or []))
        return rasa_server.run_graph(runner, inputs=inputs, targets=targets)
    def rasa(predict, *args):
        DaskGraphRunner.run = dask_run
        return predict(*args)
    def fixed(predict, *args):
        DaskGraphRunner.run = fixed_run
        runs.clear()
        return predict(*args)

    found = {"order": order is not None, "predictions": 0, "differing": 0, "ted_asked": 0}
    def compare(sender, events):
        def tracker():
            return DialogueStateTracker.from_events(sender, events, domain.slots)
        by_rasa = rasa(rasa_server._rasa_predict_next_with_tracker, processor, tracker())
        with_fixes = fixed(rasa_server._predict_next_with_tracker, processor, tracker())
        found["predictions"] += 1
        found["differing"] += with_fixes != by_rasa
        found["ted_asked"] += [order.ted_node] in runs
        return by_rasa

    said = [example.get("text") for example in load_data(sys.argv[2]).intent_examples]
    for stories in sys.argv[3:]:
        for story in _create_data_generator(stories, agent).generate_story_trackers():
            events = list(story.events)
            said += [event.text for event in events if isinstance(event, UserUttered) and event.text]
            for index, event in enumerate(events):
                if isinstance(event, ActionExecuted) and index > 0:
                    compare(story.sender_id, events[:index])

    rng = random.Random(20)
    intents = sorted(domain.intents)
    for number in range(60):
        events = [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted()]
        events.append(ActionExecuted(ACTION_LISTEN_NAME))
        for _ in range(4):
            events.append(UserUttered("…", intent={"name": rng.choice(intents), "confidence": 1.0}))
            for _ in range(5):
                prediction = compare(f"random-{number}", events)
                action = domain.action_names_or_texts[prediction.max_confidence_index]
                events += [*prediction.events, ActionExecuted(action, policy=prediction.policy_name)]
                if action == ACTION_LISTEN_NAME:
                    break

    async def readings():
        both = []
        for text in said:
            message = UserMessage(text, sender_id="nlu")
            by_rasa = await rasa(processor.parse_message, message)
            both.append((by_rasa, await fixed(processor.parse_message, message)))
        return both
    both = asyncio.run(readings())
    found["messages"] = len(both)
    found["read differently"] = sum(by_rasa != with_fixes for by_rasa, with_fixes in both)
    print(json.dumps(found))
    """
)


def test_nlu_and_policies_predict_as_rasa_does_with_the_fixes(trained_model: Path) -> None:
    held_out = paths.PROJECT_ROOT / "tests" / "bot" / "nlu_heldout.yml"
    stories = [paths.PROJECT_ROOT / "tests" / "bot" / "stories", paths.BOT_DATA / "stories"]
    inputs = [trained_model, held_out, *stories]
    found = json_from_rasa_environment(PREDICTIONS, *map(str, inputs), timeout=900)

    assert found["order"], "the demo model's policies no longer allow TED to be asked last"
    assert found["predictions"] > 500
    assert found["differing"] == 0
    assert found["messages"] > 200
    assert found["read differently"] == 0
    # Both ways are taken: TED skipped where a rule or story is certain, asked where none is.
    assert 0 < found["ted_asked"] < found["predictions"]


# When the other policies' predictions decide without TED, on a domain of three actions.
CERTAINTY = textwrap.dedent(
    """
    import json
    from rasa.core.policies.policy import PolicyPrediction
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, ActionExecutionRejected, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from bot.rasa_server import certain_without_ted

    domain = Domain.from_dict({"intents": ["greet"], "actions": ["action_a", "action_b"]})
    a, b = domain.index_for_action("action_a"), domain.index_for_action("action_b")
    greet = UserUttered("hi", {"name": "greet"})
    def tracker(*events):
        return DialogueStateTracker.from_events("s", [ActionExecuted("action_listen"), *events], domain.slots)
    def certain(confidences, priority=6, tracker=tracker(greet), **kind):
        probabilities = [0.0] * len(domain.action_names_or_texts)
        for index, confidence in confidences.items():
            probabilities[index] = confidence
        prediction = PolicyPrediction(probabilities, "RulePolicy", priority, **kind)
        return certain_without_ted([prediction], tracker, domain, ted_priority=1)

    print(json.dumps({
        "rule certain": certain({a: 1.0}),
        "almost certain": certain({a: 0.99}),
        "rule's fallback": certain({b: 0.3}),
        "nothing predicted": certain({}),
        "certain, lower priority than TED": certain({a: 1.0}, priority=0),
        "certain of the action just rejected": certain(
            {a: 1.0}, tracker=tracker(greet, ActionExecutionRejected("action_a"))
        ),
        "no-user prediction, unsure": certain({a: 0.5}, is_no_user_prediction=True),
        "end-to-end prediction": certain({a: 1.0}, is_end_to_end_prediction=True),
    }))
    """
)


def test_ted_is_skipped_only_when_it_cannot_win() -> None:
    assert json_from_rasa_environment(CERTAINTY) == {
        "rule certain": True,
        "almost certain": False,
        "rule's fallback": False,
        "nothing predicted": False,
        "certain, lower priority than TED": False,
        "certain of the action just rejected": False,
        "no-user prediction, unsure": True,
        "end-to-end prediction": False,
    }
