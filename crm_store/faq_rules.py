"""The rules a FAQ must keep, wherever it comes from: the API, a FAQ file, or `faqs.csv` of an import.

A FAQ's id, question, answer, category and alternative phrasings are cleaned (control characters
and runs of spaces removed; line breaks kept in the answer only) and checked against the limits
below. A broken rule raises `crm_store.errors.Invalid` with a code, the offending `field` and the
limit, never a sentence: the API words the code in `api/errors.py`, an import report in
`crm_store.importer.FAQ_REASONS`.

| code                             | field         | data                    |
|----------------------------------|---------------|-------------------------|
| `faq_id_invalid`                 | faq_id        | max_chars               |
| `faq_question_empty`             | question      |                         |
| `faq_question_too_long`          | question      | max_chars               |
| `faq_answer_empty`               | answer        |                         |
| `faq_answer_too_long`            | answer        | max_chars               |
| `faq_category_too_long`          | category      | max_chars               |
| `faq_alt_question_has_separator` | alt_questions | position, separator     |
| `faq_alt_question_too_long`      | alt_questions | position, max_chars     |
| `faq_alt_questions_too_many`     | alt_questions | max_count               |

The module sits beside the `crm_store.faqs` package rather than inside it because the CSV importer
checks `faqs.csv` rows with it while `crm_store.faqs` reads FAQ files with the importer's CSV
reader: inside the package, the two would import each other.
"""

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from crm_store import clock
from crm_store.errors import Invalid
from crm_store.models import Faq

__all__ = [
    "ALT_QUESTIONS_MAX",
    "ALT_SEPARATOR",
    "ANSWER_MAX_CHARS",
    "CATEGORY_MAX_CHARS",
    "FAQ_ID_MAX_CHARS",
    "FAQ_ID_PATTERN",
    "QUESTION_MAX_CHARS",
    "FaqFields",
    "check_answer",
    "check_category",
    "check_id",
    "check_question",
    "checked_fields",
    "join_alts",
    "multi_line",
    "one_line",
    "split_alts",
]

QUESTION_MAX_CHARS: Final = 200
"""Longest question or alternative phrasing: a question is a sentence, not a paragraph."""
ANSWER_MAX_CHARS: Final = 2000
"""Longest answer: a chat bubble, not a manual; longer content belongs on a page the answer links."""
ALT_QUESTIONS_MAX: Final = 30
"""Most alternative phrasings per FAQ: beyond that the index grows and the FAQ should be split."""
CATEGORY_MAX_CHARS: Final = 32
"""Longest category, the width of `faqs.category`."""
FAQ_ID_MAX_CHARS: Final = 32
"""Longest id, the width of `faqs.faq_id`."""
FAQ_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
"""The importer's id rule: letters, digits, `-`, `_`, `.`, at most 32 characters."""
ALT_SEPARATOR: Final = "|"
"""Separates the phrasings in the `alt_questions` column."""


def one_line(text: str) -> str:
    """`text` without control characters, line breaks or runs of spaces."""
    # Control characters (a pasted tab, a stray NUL) and line breaks have no place in a question.
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return " ".join(cleaned.split())


def multi_line(text: str) -> str:
    """`text` without control characters or trailing spaces, its line breaks kept (as "\\n")."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    cleaned = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")
    return "\n".join(line.rstrip() for line in cleaned.strip().split("\n"))


def check_id(faq_id: str) -> str:
    """The id without surrounding spaces.

    Raises:
        Invalid: `faq_id_invalid`, the id breaks `FAQ_ID_PATTERN`.
    """
    value = faq_id.strip()
    if not FAQ_ID_PATTERN.fullmatch(value):
        raise Invalid("faq_id_invalid", field="faq_id", max_chars=FAQ_ID_MAX_CHARS)
    return value


def check_question(question: str, *, field: str = "question") -> str:
    """The question on one line.

    Raises:
        Invalid: `faq_question_empty` or `faq_question_too_long`, naming `field`.
    """
    value = one_line(question)
    if not value:
        raise Invalid("faq_question_empty", field=field)
    if len(value) > QUESTION_MAX_CHARS:
        raise Invalid("faq_question_too_long", field=field, max_chars=QUESTION_MAX_CHARS)
    return value


def check_answer(answer: str) -> str:
    """The answer with its line breaks, without control characters or trailing spaces.

    Raises:
        Invalid: `faq_answer_empty` or `faq_answer_too_long`.
    """
    value = multi_line(answer)
    if not value:
        raise Invalid("faq_answer_empty", field="answer")
    if len(value) > ANSWER_MAX_CHARS:
        raise Invalid("faq_answer_too_long", field="answer", max_chars=ANSWER_MAX_CHARS)
    return value


def check_category(category: str | None) -> str | None:
    """The category on one line, or None for none.

    Raises:
        Invalid: `faq_category_too_long`.
    """
    value = one_line(category or "")
    if len(value) > CATEGORY_MAX_CHARS:
        raise Invalid("faq_category_too_long", field="category", max_chars=CATEGORY_MAX_CHARS)
    return value or None


def _check_alt_questions(alt_questions: Iterable[str], question: str) -> list[str]:
    """Cleaned phrasings without blanks, repeats or the main question itself, in the given order."""
    kept: dict[str, None] = {}
    for position, raw in enumerate(alt_questions, start=1):
        value = one_line(raw)
        if not value or value == question:
            continue
        if ALT_SEPARATOR in value:
            # The column separates phrasings with "|": one inside a phrasing would split it in two.
            raise Invalid(
                "faq_alt_question_has_separator",
                field="alt_questions",
                position=position,
                separator=ALT_SEPARATOR,
            )
        if len(value) > QUESTION_MAX_CHARS:
            raise Invalid(
                "faq_alt_question_too_long",
                field="alt_questions",
                position=position,
                max_chars=QUESTION_MAX_CHARS,
            )
        kept.setdefault(value, None)
    if len(kept) > ALT_QUESTIONS_MAX:
        raise Invalid("faq_alt_questions_too_many", field="alt_questions", max_count=ALT_QUESTIONS_MAX)
    return list(kept)


def split_alts(text: str | None) -> list[str]:
    """The phrasings of an `alt_questions` column, without blank ones."""
    return [part for part in (text or "").split(ALT_SEPARATOR) if part.strip()]


def join_alts(alts: Sequence[str]) -> str | None:
    """The `alt_questions` column of these phrasings, None for none."""
    return ALT_SEPARATOR.join(alts) or None


@dataclass(frozen=True)
class FaqFields:
    """A FAQ's content after the rules: what is stored in its columns."""

    question: str
    answer: str
    category: str | None
    alt_questions: str | None

    def differs_from(self, faq: Faq) -> bool:
        """True when storing these fields would change `faq`."""
        return (faq.question, faq.answer, faq.category, faq.alt_questions) != (
            self.question,
            self.answer,
            self.category,
            self.alt_questions,
        )

    def apply_to(self, faq: Faq) -> None:
        """Write the fields into `faq` and stamp it with the CRM clock."""
        faq.question = self.question
        faq.answer = self.answer
        faq.category = self.category
        faq.alt_questions = self.alt_questions
        faq.updated_at = clock.now()


def checked_fields(
    *, question: str, answer: str, category: str | None, alt_questions: Iterable[str]
) -> FaqFields:
    """A FAQ's fields cleaned and checked, in this order: question, answer, category, phrasings.

    Raises:
        Invalid: The first rule broken (see the module's table).
    """
    checked_question = check_question(question)
    return FaqFields(
        question=checked_question,
        answer=check_answer(answer),
        category=check_category(category),
        alt_questions=join_alts(_check_alt_questions(alt_questions, checked_question)),
    )
