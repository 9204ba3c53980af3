"""api/texts.yml: every entry is said somewhere, in Chinese; a missing one stops the API at import."""

import re

import pytest

from api.texts import all_keys, wording
from crm_store.settings import PROJECT_ROOT

_CALL = re.compile(r'wording\("([a-z_]+\.[a-z_]+)"\)')


def test_every_text_is_used_and_every_used_text_exists() -> None:
    used = {
        key for path in (PROJECT_ROOT / "api").rglob("*.py") for key in _CALL.findall(path.read_text("utf-8"))
    }

    assert used == all_keys()


def test_every_text_is_chinese() -> None:
    for key in all_keys():
        assert re.search(r"[\u4e00-\u9fff]", wording(key)), key


def test_an_unknown_text_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="gateway.nope"):
        wording("gateway.nope")
