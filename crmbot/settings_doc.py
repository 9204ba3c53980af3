"""docs/configuration.md, generated from the settings classes of `crm_store.settings`.

    .venv-app/bin/python -m crmbot.settings_doc          # print the page
    .venv-app/bin/python -m crmbot.settings_doc --write  # write docs/configuration.md

tests/test_settings_doc.py fails when the page on disk differs from what this prints, so a setting
added without regenerating the page is caught.
"""

import argparse
from pathlib import Path
from typing import Final

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from crm_store.settings import (
    PROJECT_ROOT,
    AnalyticsSettings,
    ApiSettings,
    CareSettings,
    KnowledgeSettings,
    PrivacySettings,
    StackSettings,
    StoreSettings,
    WechatSettings,
    WecomSettings,
)

PAGE: Final = PROJECT_ROOT / "docs" / "configuration.md"

SECTIONS: Final[tuple[tuple[str, type[BaseSettings]], ...]] = (
    ("CRM store, tracker store and clock", StoreSettings),
    ("API", ApiSettings),
    ("Processes started by `crmbot up`", StackSettings),
    ("FAQ knowledge base", KnowledgeSettings),
    ("Proactive care", CareSettings),
    ("Customer value and risk (docs/analytics.md)", AnalyticsSettings),
    ("Personal data (docs/privacy.md)", PrivacySettings),
    ("WeChat Official Account channel (docs/channels.md)", WechatSettings),
    ("WeCom (企业微信) app for staff (docs/channels.md)", WecomSettings),
)

_INTRO: Final = """# Configuration

Every setting is an environment variable, or a line `NAME=value` in `.env` at the project root;
an empty value counts as unset. They are defined, with their types and limits, in one module:
`crm_store/settings.py`. This page is generated from it (`python -m crmbot.settings_doc --write`),
and a test fails when the two disagree.

`crmbot up` sets some of them for the processes it starts (the database and tracker URLs, the
ports, `KNOWLEDGE_WARM_UP`), so the processes always agree with each other.
"""


def _env_name(settings: type[BaseSettings], name: str) -> str:
    return f"{settings.model_config.get('env_prefix', '')}{name}".upper()


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    text = str(value)
    # Paths are shown relative to the repository, so the page is the same on every machine.
    text = text.replace(str(PROJECT_ROOT), "<repo>").replace(str(Path.home()), "~")
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole page, as Markdown."""
    parts = [_INTRO]
    for title, settings in SECTIONS:
        rows = ["| variable | default | meaning |", "|---|---|---|"]
        for name, field in settings.model_fields.items():
            meaning = _cell(field.description or "")
            rows.append(f"| `{_env_name(settings, name)}` | {_cell(_default(field))} | {meaning} |")
        parts.append(f"## {title}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Print the page, or write it to docs/configuration.md with `--write`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(PROJECT_ROOT)}")
    args = parser.parse_args(argv)
    page = render()
    if args.write:
        Path(PAGE).write_text(page, encoding="utf-8")
        print(f"wrote {PAGE.relative_to(PROJECT_ROOT)}")
    else:
        print(page, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
