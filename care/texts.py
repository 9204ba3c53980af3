"""The texts of proactive care: every sentence comes from care/templates.yml, filled by name.

`render("birthday.customer", salutation="张伟女士")` picks a template by its dotted key and fills
its variables; a missing variable is a programming error (a rule and its template disagree) and
raises `KeyError` at once rather than sending a text with a hole in it.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["TEMPLATES_FILE", "email_subject", "render", "salutation", "templates"]

TEMPLATES_FILE: Final = Path(__file__).resolve().parent / "templates.yml"

_HONORIFICS: Final = {"女": "女士", "男": "先生"}


@lru_cache(maxsize=1)
def templates() -> dict[str, str]:
    """Every template by its dotted key (`birthday.staff`, `subject.lapse` …)."""
    raw = yaml.safe_load(TEMPLATES_FILE.read_text(encoding="utf-8"))
    flat: dict[str, str] = {}
    for group, entries in raw.items():
        for name, text in entries.items():
            flat[f"{group}.{name}"] = str(text)
    return flat


def render(key: str, **fields: Any) -> str:
    """The template `key` with its variables filled.

    Raises:
        KeyError: No such template, or a variable it needs is missing (a programming error).
    """
    return templates()[key].format_map(fields)


def salutation(name: str, gender: str | None) -> str:
    """How a customer is addressed: 张伟女士, 刘洋先生, or the name alone when the gender is unknown."""
    return f"{name}{_HONORIFICS.get(gender or '', '')}"


def email_subject(rule: str) -> str:
    """The subject of a care e-mail of `rule`."""
    table = templates()
    return table.get(f"subject.{rule}", table["subject.default"])
