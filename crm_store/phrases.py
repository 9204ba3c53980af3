"""What a customer's words mean where the NLU model does not decide: plain rules on the text.

The dialogue asks these questions while a form runs ("is this a cancellation?", "is this 'no
order'?", "how many stars?"); the answers are rules of the CRM, kept here with their tests rather
than in the actions, which only ask. Every function takes the message as typed and never raises.
"""

import re
from typing import Final

from crm_store.vocab import COMPLAINT_CATEGORIES, RATING_MAX, RATING_MIN

STOP_WORDS: Final = ("算了", "取消", "不投诉", "不用了", "不要了", "不弄了")
"""Words that abandon the complaint form, wherever they appear in the message."""

NO_ORDER_WORDS: Final = ("没有", "无", "不涉及", "没订单", "不是订单")
"""Answers to "which order is it about?" that mean no particular order."""

MIN_DESCRIPTION_CHARS: Final = 4
"""A complaint description needs this many characters once the words of `_COMPLAINT_WORDS` are gone."""

# Words that only say "I want to complain", and punctuation: what is left is the actual description.
_COMPLAINT_WORDS: Final = re.compile(
    r"我要投诉|我想投诉|要投诉|投诉一下|投诉|我要反馈|反馈一下|差评|[，,。.!！?？~～\s]"
)

_RATING_DIGIT: Final = re.compile(f"[{RATING_MIN}-{RATING_MAX}]")
_RATING_WORDS: Final = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
# Checked in this order: "非常满意" and "不满意" contain "满意".
_RATING_PHRASES: Final = (
    ("非常满意", 5),
    ("很满意", 5),
    ("满分", 5),
    ("不满意", 1),
    ("太差", 1),
    ("满意", 4),
)

THUMBS_UP: Final = "👍"
THUMBS_DOWN: Final = "👎"


def wants_to_stop(text: str) -> bool:
    """True when the message abandons the complaint form ("算了", "不投诉了")."""
    return any(word in text for word in STOP_WORDS)


def means_no_order(text: str) -> bool:
    """True when the answer to "which order?" says no particular order ("没有", "不涉及")."""
    return any(word in text for word in NO_ORDER_WORDS)


def describes_a_problem(text: str) -> bool:
    """True when the message says what happened, beyond "我要投诉" (`MIN_DESCRIPTION_CHARS`)."""
    return len(_COMPLAINT_WORDS.sub("", text)) >= MIN_DESCRIPTION_CHARS


def named_category(text: str) -> str | None:
    """The complaint category the message names, when it names exactly one ("是物流配送的问题")."""
    named = [category for category in COMPLAINT_CATEGORIES if category in text]
    return named[0] if len(named) == 1 else None


def parse_rating(entity: str | None, text: str) -> int | None:
    """1–5 from a button's entity, "4分", "五星", or words such as "非常满意"; None when unclear.

    The entity is read before the text, a digit before a Chinese numeral, and a numeral before
    words of satisfaction.
    """
    for candidate in (entity or "", text):
        if match := _RATING_DIGIT.search(candidate):
            return int(match.group())
        for word, value in _RATING_WORDS.items():
            if word in candidate:
                return value
    return next((value for phrase, value in _RATING_PHRASES if phrase in text), None)


def thumbs_vote(text: str) -> bool | None:
    """True for a thumbs-up typed or clicked (👍), False for a thumbs-down (👎), None otherwise."""
    if THUMBS_UP in text:
        return True
    if THUMBS_DOWN in text:
        return False
    return None
