"""The Rasa project itself, checked by Rasa's own tools in the bot environment."""

import re
import subprocess
from pathlib import Path

import pytest

from crmbot import paths
from crmbot.training import rasa_environment

pytestmark = pytest.mark.rasa


def _rasa(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(paths.rasa_bin()), *args],
        cwd=paths.PROJECT_ROOT,
        env=rasa_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_UNUSED_UTTERANCE = re.compile(r"UserWarning: The utterance '(\w+)' is not used in any story or rule")
_INTENT_WITHOUT_EXAMPLES = re.compile(r"UserWarning: The intent '(\w+)' is listed in the domain file, but")
# Intents nobody types: the API triggers them (trigger_intent), so they have no NLU examples.
_TRIGGERED_INTENTS = {"care_notice"}  # bot/domain/care.yml, api/care_inbox.py


def _responses_uttered_by_actions() -> set[str]:
    # Actions utter responses, and the API's hand-off relay sends a few itself (api/relay.py).
    folders = [paths.PROJECT_ROOT / "actions", paths.PROJECT_ROOT / "api"]
    code = "".join(p.read_text(encoding="utf-8") for folder in folders for p in folder.rglob("*.py"))
    return set(re.findall(r'"(utter_\w+)"', code))


def test_rasa_data_validates_without_warnings(trained_model: Path) -> None:
    # trained_model also wrote the lookup tables generated from the store, which are data too.
    result = _rasa(
        "data", "validate",
        "--config", str(paths.RASA_CONFIG),
        "--domain", str(paths.BOT_DOMAIN),
        "--data", str(paths.BOT_DATA), str(paths.GENERATED_NLU_DIR),
    )  # fmt: skip
    output = result.stdout + result.stderr

    assert result.returncode == 0, output[-4000:]
    # Rasa cannot see responses that actions and forms utter; every other warning is a defect,
    # and so is a response that neither a story, a rule, a form nor an action uses.
    used_by_code = _responses_uttered_by_actions()
    unexplained = [
        line
        for line in output.splitlines()
        if "UserWarning" in line
        and not (
            (match := _UNUSED_UTTERANCE.search(line))
            and (match.group(1) in used_by_code or match.group(1).startswith("utter_ask_"))
        )
        and not ((match := _INTENT_WITHOUT_EXAMPLES.search(line)) and match.group(1) in _TRIGGERED_INTENTS)
    ]
    assert unexplained == []


def test_dialogue_test_stories_pass(trained_model: Path, tmp_path: Path) -> None:
    result = _rasa(
        "test", "core",
        "--model", str(trained_model),
        "--stories", str(paths.PROJECT_ROOT / "tests" / "bot" / "stories"),
        "--out", str(tmp_path),
        "--fail-on-prediction-errors",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    failed = tmp_path / "failed_test_stories.yml"
    assert not failed.exists() or "None of the test stories failed" in failed.read_text(encoding="utf-8")
