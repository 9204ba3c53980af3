"""The fixes bot/rasa_server.py applies to Rasa 3.6 keep Rasa's behaviour, in the bot environment."""

import json
import subprocess
import textwrap

import pytest

from crmbot import paths
from crmbot.training import rasa_environment

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
    python = paths.rasa_server_command()[0]
    result = subprocess.run(
        [python, "-c", CHECK, json.dumps(RESPONSES)],
        cwd=paths.PROJECT_ROOT,
        env=rasa_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])

    assert outcomes["fixed"] == outcomes["rasa"]
    assert outcomes["rasa"][:3] == [True, True, True]
    assert all("Failed to validate Action server response" in str(o) for o in outcomes["rasa"][3:])
