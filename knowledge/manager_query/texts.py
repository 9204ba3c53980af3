"""The parser's sentences: every text a manager reads comes from texts.yml, filled by name.

`render("clarify.similar_names", typed="陈思源")` picks a template by its dotted key; a missing
variable is a programming error and raises `KeyError` at once.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["TEXTS_FILE", "examples", "render", "templates"]

TEXTS_FILE: Final = Path(__file__).resolve().parent / "texts.yml"


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))
    return loaded


@lru_cache(maxsize=1)
def templates() -> dict[str, str]:
    """Every template by its dotted key (`period.month`, `clarify.which_metric` …)."""
    flat: dict[str, str] = {}
    for group, entries in _raw().items():
        if isinstance(entries, dict):
            for name, text in entries.items():
                flat[f"{group}.{name}"] = str(text)
    return flat


def render(key: str, **fields: Any) -> str:
    """The template `key` with its variables filled.

    Raises:
        KeyError: No such template, or a variable it needs is missing (a programming error).
    """
    return templates()[key].format_map(fields)


def examples() -> tuple[str, ...]:
    """Questions the parser answers, offered when a question is not understood."""
    return tuple(str(example) for example in _raw()["examples"])
