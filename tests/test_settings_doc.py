"""Configuration is documented where a user looks, and nowhere else is configuration read."""

import re
import subprocess

from crm_store.settings import PROJECT_ROOT, StoreSettings
from crmbot.settings_doc import PAGE, render


def test_configuration_page_is_generated_from_the_settings_classes() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is out of date: run `.venv-app/bin/python -m crmbot.settings_doc --write`"
    )


def test_configuration_page_lists_every_variable_with_its_meaning() -> None:
    page = render()
    for name, field in StoreSettings.model_fields.items():
        assert f"`CRM_{name.upper()}`" in page
        assert field.description, f"CRM_{name.upper()} has no description"
    assert "`KNOWLEDGE_ANSWER_SCORE`" in page
    assert str(PROJECT_ROOT) not in page  # the same page on every machine


def test_no_module_reads_the_environment_outside_the_settings_module() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    readers = [
        path
        for path in tracked
        if path != "crm_store/settings.py"
        and (PROJECT_ROOT / path).is_file()
        and re.search(r"os\.environ|os\.getenv|getenv\(", (PROJECT_ROOT / path).read_text(encoding="utf-8"))
    ]
    assert readers == []
