"""The API's own words, from api/texts.yml: one home for what the channel layer says itself.

Each module keeps its words as constants (`UNAVAILABLE_REPLY = wording("gateway.unavailable")`), read
once at import, so a missing entry stops the API at start rather than in a customer's chat.
"""

from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["TEXTS_FILE", "all_keys", "wording"]

TEXTS_FILE: Final = Path(__file__).with_name("texts.yml")


@cache
def _texts() -> dict[str, Any]:
    loaded = yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def wording(key: str) -> str:
    """The text at `key` ("section.name").

    Raises:
        LookupError: No such text in api/texts.yml (a programming error, found at import).
    """
    section, _, name = key.partition(".")
    value = _texts().get(section, {}).get(name)
    if not isinstance(value, str):
        raise LookupError(f"api/texts.yml has no text {key!r}")
    return value


def all_keys() -> set[str]:
    """Every "section.name" of api/texts.yml."""
    return {f"{section}.{name}" for section, names in _texts().items() for name in names}
