"""The FAQ knowledge base as staff curate it: FAQs, questions the assistant could not answer, feedback.

FAQs are written only through the functions here (or the CSV importer). Each write sets the FAQ's
`updated_at`, raises the knowledge revision (`faq_revision`, see `crm_store.revisions`) and adds an
audit row, all in the caller's transaction: every function flushes, the caller commits. The
retrieval engine in `knowledge/` reads FAQs through `list_faqs` and follows `faq_revision`.

The loop that grows the knowledge base: the assistant records what it could not answer
(`record_unanswered`); staff see the most asked first (`list_unanswered`) and turn one into a new
FAQ or an extra phrasing of an existing one with a single call (`resolve_unanswered`), or dismiss
it. Customers rate answers (`record_feedback`); `feedback_summary` gives the helpful rate that
measures deflection. `paraphrase_pairs` hands the phrasings to encoder tuning.

Errors are `FaqError`s whose message is Chinese and fit to show to staff: `FaqNotFound`,
`UnansweredNotFound`, `FaqConflict` and `InvalidFaq` (with the offending field).
"""

import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import case, func, literal, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.ids import add_with_new_id, begin_write
from crm_store.importer import FaqRow, FileUnreadable, read_csv_rows, row_reason
from crm_store.models import AuditLog, Faq, FaqFeedback, FaqUnanswered
from crm_store.privacy import conversation_key, mask_text
from crm_store.revisions import bump_faq_revision, faq_revision
from crm_store.vocab import (
    UNANSWERED_STATUS_DISMISSED,
    UNANSWERED_STATUS_OPEN,
    UNANSWERED_STATUS_RESOLVED,
    UNANSWERED_STATUSES,
)

__all__ = [
    "ALT_QUESTIONS_MAX",
    "ANSWER_MAX_CHARS",
    "CATEGORY_MAX_CHARS",
    "QUESTION_MAX_CHARS",
    "UNANSWERED_MAX_CHARS",
    "FaqConflict",
    "FaqError",
    "FaqFeedbackStats",
    "FaqImportProblem",
    "FaqImportReport",
    "FaqNotFound",
    "FeedbackSummary",
    "InvalidFaq",
    "UnansweredNotFound",
    "create_faq",
    "delete_faq",
    "dismiss_unanswered",
    "faq_revision",
    "feedback_summary",
    "get_faq",
    "list_faqs",
    "list_unanswered",
    "load_faq_file",
    "paraphrase_pairs",
    "question_key",
    "record_feedback",
    "record_unanswered",
    "resolve_unanswered",
    "update_faq",
]

logger = logging.getLogger(__name__)

QUESTION_MAX_CHARS: Final = 200
"""Longest question or alternative phrasing: a question is a sentence, not a paragraph."""
ANSWER_MAX_CHARS: Final = 2000
"""Longest answer: a chat bubble, not a manual; longer content belongs on a page the answer links."""
ALT_QUESTIONS_MAX: Final = 30
"""Most alternative phrasings per FAQ: beyond that the index grows and the FAQ should be split."""
CATEGORY_MAX_CHARS: Final = 32
"""Longest category, the width of `faqs.category`."""
UNANSWERED_MAX_CHARS: Final = 500
"""An unanswered question is stored cut to this length (after masking)."""
UNANSWERED_LIST_MAX: Final = 500
"""Most unanswered questions one `list_unanswered` call returns."""

NEW_FAQ_PREFIX: Final = "F"
NEW_FAQ_WIDTH: Final = 3
FAQ_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
"""The importer's id rule: letters, digits, `-`, `_`, `.`, at most 32 characters."""

_ALT_SEPARATOR: Final = "|"
# A question longer than any stored one cannot need more text to be masked and cut correctly.
_UNANSWERED_INPUT_CHARS: Final = 4 * UNANSWERED_MAX_CHARS
_KEY_SLOT: Final = "#"
_KEY_IDENTIFIERS: Final = re.compile(r"(?<![a-z0-9])(?:so[0-9]{12}|t[0-9]{5})(?![0-9])")
_KEY_MASKED: Final = re.compile(r"[0-9*@]*\*[0-9*@]*")
_ID_CHUNK: Final = 500


# --------------------------------------------------------------------------------------------------
# Errors.


class FaqError(Exception):
    """A FAQ operation refused; the message is Chinese and may be shown to staff as it is."""


class FaqNotFound(FaqError, LookupError):
    """No FAQ with that id."""

    def __init__(self, faq_id: str) -> None:
        super().__init__(f"FAQ {faq_id} 不存在")
        self.faq_id = faq_id


class UnansweredNotFound(FaqError, LookupError):
    """No queued question with that id."""

    def __init__(self, unanswered_id: int) -> None:
        super().__init__(f"待解答问题 {unanswered_id} 不存在")
        self.unanswered_id = unanswered_id


class FaqConflict(FaqError):
    """The change clashes with what is stored: a taken id, a question already handled."""


class InvalidFaq(FaqError, ValueError):
    """A value breaks a FAQ rule; `field` names it (e.g. "question"), None when no one field is at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------------------------------
# Validation.


def _one_line(text: str) -> str:
    # Control characters (a pasted tab, a stray NUL) and line breaks have no place in a question.
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return " ".join(cleaned.split())


def _multi_line(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    cleaned = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")
    return "\n".join(line.rstrip() for line in cleaned.strip().split("\n"))


def _check_id(faq_id: str) -> str:
    value = faq_id.strip()
    if not FAQ_ID_PATTERN.fullmatch(value):
        raise InvalidFaq("FAQ 编号格式不对：只能含字母、数字、-、_、.，最长 32 位", field="faq_id")
    return value


def _check_question(question: str, *, field: str = "question") -> str:
    value = _one_line(question)
    if not value:
        raise InvalidFaq("问题不能为空", field=field)
    if len(value) > QUESTION_MAX_CHARS:
        raise InvalidFaq(f"问题不能超过 {QUESTION_MAX_CHARS} 字", field=field)
    return value


def _check_answer(answer: str) -> str:
    value = _multi_line(answer)
    if not value:
        raise InvalidFaq("答案不能为空", field="answer")
    if len(value) > ANSWER_MAX_CHARS:
        raise InvalidFaq(f"答案不能超过 {ANSWER_MAX_CHARS} 字", field="answer")
    return value


def _check_category(category: str | None) -> str | None:
    value = _one_line(category or "")
    if len(value) > CATEGORY_MAX_CHARS:
        raise InvalidFaq(f"分类不能超过 {CATEGORY_MAX_CHARS} 字", field="category")
    return value or None


def _check_alt_questions(alt_questions: Iterable[str], question: str) -> list[str]:
    """Cleaned phrasings without blanks, repeats or the main question itself, in the given order."""
    kept: dict[str, None] = {}
    for position, raw in enumerate(alt_questions, start=1):
        value = _one_line(raw)
        if not value or value == question:
            continue
        if _ALT_SEPARATOR in value:
            # The column separates phrasings with "|": one inside a phrasing would split it in two.
            raise InvalidFaq(f"第 {position} 条备选问法不能包含“|”", field="alt_questions")
        if len(value) > QUESTION_MAX_CHARS:
            raise InvalidFaq(
                f"第 {position} 条备选问法不能超过 {QUESTION_MAX_CHARS} 字", field="alt_questions"
            )
        kept.setdefault(value, None)
    if len(kept) > ALT_QUESTIONS_MAX:
        raise InvalidFaq(f"备选问法最多 {ALT_QUESTIONS_MAX} 条", field="alt_questions")
    return list(kept)


def _split_alts(text: str | None) -> list[str]:
    return [part for part in (text or "").split(_ALT_SEPARATOR) if part.strip()]


def _join_alts(alts: Sequence[str]) -> str | None:
    return _ALT_SEPARATOR.join(alts) or None


@dataclass(frozen=True)
class _FaqFields:
    question: str
    answer: str
    category: str | None
    alt_questions: str | None

    def differs_from(self, faq: Faq) -> bool:
        return (faq.question, faq.answer, faq.category, faq.alt_questions) != (
            self.question,
            self.answer,
            self.category,
            self.alt_questions,
        )

    def apply_to(self, faq: Faq) -> None:
        faq.question = self.question
        faq.answer = self.answer
        faq.category = self.category
        faq.alt_questions = self.alt_questions
        faq.updated_at = clock.now()


def _checked_fields(
    *, question: str, answer: str, category: str | None, alt_questions: Iterable[str]
) -> _FaqFields:
    checked_question = _check_question(question)
    return _FaqFields(
        question=checked_question,
        answer=_check_answer(answer),
        category=_check_category(category),
        alt_questions=_join_alts(_check_alt_questions(alt_questions, checked_question)),
    )


def _audit(session: Session, action: str, faq_id: str | None, actor_id: str | None, **detail: Any) -> None:
    session.add(
        AuditLog(
            actor_role="staff" if actor_id is not None else "system",
            actor_id=actor_id,
            action=action,
            entity="faq",
            entity_id=faq_id,
            detail=detail,
        )
    )


# --------------------------------------------------------------------------------------------------
# FAQs.


def list_faqs(session: Session) -> list[Faq]:
    """Every FAQ, by id (F99 before F100)."""
    return list(session.scalars(select(Faq).order_by(func.length(Faq.faq_id), Faq.faq_id)))


def get_faq(session: Session, faq_id: str) -> Faq:
    """The FAQ with that id.

    Raises:
        FaqNotFound: No such FAQ.
    """
    faq = session.get(Faq, faq_id.strip()) if faq_id.strip() else None
    if faq is None:
        raise FaqNotFound(faq_id)
    return faq


def create_faq(
    session: Session,
    *,
    question: str,
    answer: str,
    category: str | None = None,
    alt_questions: Iterable[str] = (),
    faq_id: str | None = None,
    actor_id: str | None = None,
) -> Faq:
    """Add a FAQ, under `faq_id` or under the next free "F" number (F025 after F024).

    Args:
        session: An open session; the caller commits.
        question: The main question, at most `QUESTION_MAX_CHARS` characters.
        answer: The answer, at most `ANSWER_MAX_CHARS` characters; line breaks are kept.
        category: Free text such as 售后 or 物流, or None.
        alt_questions: Other phrasings of the question (at most `ALT_QUESTIONS_MAX`); blanks,
            repeats and the main question itself are dropped.
        faq_id: The id to use; None allocates one.
        actor_id: Who did it, for the audit log (None: the system).

    Raises:
        InvalidFaq: A value breaks a rule above.
        FaqConflict: `faq_id` is taken.
    """
    fields = _checked_fields(question=question, answer=answer, category=category, alt_questions=alt_questions)
    stamp = clock.now()

    def build(new_id: str) -> Faq:
        return Faq(
            faq_id=new_id,
            question=fields.question,
            answer=fields.answer,
            category=fields.category,
            alt_questions=fields.alt_questions,
            updated_at=stamp,
        )

    if faq_id is None:
        faq = add_with_new_id(
            session,
            model=Faq,
            column=Faq.faq_id,
            prefix=NEW_FAQ_PREFIX,
            width=NEW_FAQ_WIDTH,
            build=build,
        )
    else:
        wanted = _check_id(faq_id)
        if session.get(Faq, wanted) is not None:
            raise FaqConflict(f"FAQ 编号 {wanted} 已存在")
        begin_write(session, Faq)
        faq = build(wanted)
        try:
            with session.begin_nested():
                session.add(faq)
        except IntegrityError:
            # Another writer took the id between the check and the insert.
            raise FaqConflict(f"FAQ 编号 {wanted} 已存在") from None
    bump_faq_revision(session)
    _audit(session, "create_faq", faq.faq_id, actor_id)
    session.flush()
    return faq


def update_faq(
    session: Session,
    faq_id: str,
    *,
    question: str | None = None,
    answer: str | None = None,
    category: str | None = None,
    alt_questions: Iterable[str] | None = None,
    actor_id: str | None = None,
) -> Faq:
    """Change some fields of a FAQ; None leaves a field as it is, `category=""` clears the category.

    `alt_questions` replaces the whole list. A call that changes nothing writes nothing: no new
    `updated_at`, revision or audit row.

    Raises:
        FaqNotFound: No such FAQ.
        InvalidFaq: A value breaks a rule of `create_faq`.
    """
    faq = get_faq(session, faq_id)
    new_question = question if question is not None else faq.question
    fields = _checked_fields(
        question=new_question,
        answer=answer if answer is not None else faq.answer,
        category=category if category is not None else faq.category,
        # Kept phrasings are checked again: the main question may now equal one of them.
        alt_questions=alt_questions if alt_questions is not None else _split_alts(faq.alt_questions),
    )
    if not fields.differs_from(faq):
        return faq
    changed = [
        name
        for name, old, new in (
            ("question", faq.question, fields.question),
            ("answer", faq.answer, fields.answer),
            ("category", faq.category, fields.category),
            ("alt_questions", faq.alt_questions, fields.alt_questions),
        )
        if old != new
    ]
    fields.apply_to(faq)
    bump_faq_revision(session)
    _audit(session, "update_faq", faq.faq_id, actor_id, fields=changed)
    session.flush()
    return faq


def delete_faq(session: Session, faq_id: str, *, actor_id: str | None = None) -> None:
    """Delete a FAQ. Its feedback stays in the statistics; questions resolved by it keep their status.

    Raises:
        FaqNotFound: No such FAQ.
    """
    faq = get_faq(session, faq_id)
    session.delete(faq)
    bump_faq_revision(session)
    _audit(session, "delete_faq", faq.faq_id, actor_id)
    session.flush()


# --------------------------------------------------------------------------------------------------
# Import from a file.


@dataclass(frozen=True)
class FaqImportProblem:
    """A rejected entry: the file, where in it (a line number, or "#3" for the third JSON entry), why."""

    file: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.where}: {self.reason}"


@dataclass
class FaqImportReport:
    """What `load_faq_file` did with the entries of one file."""

    file: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[FaqImportProblem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """Entries (or the whole file) refused."""
        return len(self.errors)

    @property
    def ok(self) -> bool:
        """True when every entry read was accepted."""
        return not self.errors


@dataclass(frozen=True)
class _Entry:
    where: str
    faq_id: str | None
    fields: _FaqFields


def _csv_entries(path: Path, report: FaqImportReport) -> Iterator[_Entry]:
    for line, cells in read_csv_rows(path, tuple(FaqRow.model_fields)):
        report.read += 1
        if isinstance(cells, str):
            report.errors.append(FaqImportProblem(path.name, str(line), cells))
            continue
        try:
            row = FaqRow.model_validate(cells)
            fields = _checked_fields(
                question=row.question,
                answer=row.answer,
                category=row.category,
                alt_questions=_split_alts(row.alt_questions),
            )
        except ValidationError as exc:
            report.errors.append(FaqImportProblem(path.name, str(line), row_reason(exc)))
            continue
        except InvalidFaq as exc:
            report.errors.append(FaqImportProblem(path.name, str(line), str(exc)))
            continue
        yield _Entry(str(line), row.faq_id, fields)


def _text_or_none(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidFaq(f"{key} 应为文本", field=key)


def _json_entry(item: object) -> tuple[str | None, _FaqFields]:
    if not isinstance(item, dict):
        raise InvalidFaq("应为一个对象（含 question 和 answer）")
    faq_id = _text_or_none(item, "faq_id")
    question = _text_or_none(item, "question")
    answer = _text_or_none(item, "answer")
    if question is None:
        raise InvalidFaq("缺少必填字段 question", field="question")
    if answer is None:
        raise InvalidFaq("缺少必填字段 answer", field="answer")
    alts = item.get("alt_questions")
    if alts is None:
        alt_list: list[str] = []
    elif isinstance(alts, str):
        alt_list = _split_alts(alts)
    elif isinstance(alts, list) and all(isinstance(alt, str) for alt in alts):
        alt_list = alts
    else:
        raise InvalidFaq("alt_questions 应为文本列表，或用“|”分隔的文本", field="alt_questions")
    fields = _checked_fields(
        question=question, answer=answer, category=_text_or_none(item, "category"), alt_questions=alt_list
    )
    return (_check_id(faq_id) if faq_id is not None and faq_id.strip() else None), fields


def _json_entries(path: Path, report: FaqImportReport) -> Iterator[_Entry]:
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        report.errors.append(FaqImportProblem(path.name, "1", "文件不是 UTF-8 编码，请另存为 UTF-8"))
        return
    except json.JSONDecodeError as exc:
        reason = f"不是有效的 JSON（第 {exc.lineno} 行第 {exc.colno} 列）"
        report.errors.append(FaqImportProblem(path.name, str(exc.lineno), reason))
        return
    items = document.get("faqs") if isinstance(document, dict) else document
    if not isinstance(items, list):
        reason = "应为 FAQ 列表，或含 faqs 列表的对象"
        report.errors.append(FaqImportProblem(path.name, "1", reason))
        return
    for index, item in enumerate(items, start=1):
        report.read += 1
        try:
            faq_id, fields = _json_entry(item)
        except InvalidFaq as exc:
            report.errors.append(FaqImportProblem(path.name, f"#{index}", str(exc)))
            continue
        yield _Entry(f"#{index}", faq_id, fields)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _ID_CHUNK):
        yield values[start : start + _ID_CHUNK]


def load_faq_file(session: Session, path: Path, *, actor_id: str | None = None) -> FaqImportReport:
    """Import FAQs from a `faqs.csv`-format CSV file or a JSON file; upsert, never delete.

    CSV: the columns of the import format (faq_id, category, question, answer, alt_questions with
    phrasings separated by `|`), checked by the importer's row rules and then by the rules of
    `create_faq`. JSON: a list of objects, or {"faqs": [...]}, each with question and answer,
    optionally faq_id, category and alt_questions (a list, or one text separated by `|`).

    An entry with an id updates that FAQ or adds it. A JSON entry without an id updates the FAQ
    with exactly the same question, else is added under a new id, so that importing a file again
    changes nothing. When one id appears twice the later entry wins. A bad entry is reported as
    `file:line: reason` (JSON: `file:#n: reason`, n counting from 1) and the good ones are kept.
    Unchanged FAQs are not touched (their `updated_at` stays, so the index need not re-encode them).

    Args:
        session: An open session; the caller commits, in one transaction.
        path: A `.csv` or `.json` file in UTF-8.
        actor_id: Who imports, for the audit log (None: the system).

    Raises:
        InvalidFaq: The file is neither `.csv` nor `.json`.
        OSError: The file cannot be opened.
    """
    report = FaqImportReport(path.name)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InvalidFaq("只能导入 .csv 或 .json 文件")
    with_id: dict[str, _Entry] = {}
    without_id: dict[str, _Entry] = {}
    try:
        entries = _csv_entries(path, report) if suffix == ".csv" else _json_entries(path, report)
        for entry in entries:
            target, key = (with_id, entry.faq_id) if entry.faq_id else (without_id, entry.fields.question)
            if key in target:
                logger.warning("%s:%s: %s 重复出现，以这一条为准", path.name, entry.where, key)
            target[key] = entry
    except FileUnreadable as exc:
        report.errors.append(FaqImportProblem(path.name, str(exc.line), exc.reason))

    begin_write(session, Faq)
    by_id = sorted(with_id)
    existing: dict[str, Faq] = {}
    for chunk in _chunks(by_id):
        found = session.scalars(select(Faq).where(Faq.faq_id.in_(chunk)))
        existing.update((faq.faq_id, faq) for faq in found)
    by_question: dict[str, Faq] = {}
    for chunk in _chunks(sorted(without_id)):
        stmt = select(Faq).where(Faq.question.in_(chunk)).order_by(Faq.faq_id.desc())
        # Descending, so that the lowest id wins when several FAQs share a question.
        by_question.update((faq.question, faq) for faq in session.scalars(stmt))

    for faq_id in by_id:
        _upsert(session, existing.get(faq_id), with_id[faq_id].fields, report, faq_id)
    for question, entry in without_id.items():
        _upsert(session, by_question.get(question), entry.fields, report, None)

    if report.inserted or report.updated:
        bump_faq_revision(session)
        _audit(
            session,
            "import_faqs",
            None,
            actor_id,
            file=path.name,
            inserted=report.inserted,
            updated=report.updated,
            rejected=report.rejected,
        )
    session.flush()
    logger.info(
        "%s: 读取 %d，新增 %d，更新 %d，未变 %d，拒绝 %d",
        path.name,
        report.read,
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected,
    )
    return report


def _upsert(
    session: Session, faq: Faq | None, fields: _FaqFields, report: FaqImportReport, faq_id: str | None
) -> None:
    if faq is not None:
        if fields.differs_from(faq):
            fields.apply_to(faq)
            report.updated += 1
        else:
            report.unchanged += 1
        return
    stamp = clock.now()

    def build(new_id: str) -> Faq:
        faq = Faq(faq_id=new_id, updated_at=stamp)
        fields.apply_to(faq)
        return faq

    if faq_id is not None:
        session.add(build(faq_id))
    else:
        add_with_new_id(
            session, model=Faq, column=Faq.faq_id, prefix=NEW_FAQ_PREFIX, width=NEW_FAQ_WIDTH, build=build
        )
    report.inserted += 1


# --------------------------------------------------------------------------------------------------
# Questions the assistant could not answer.


def question_key(text: str) -> str:
    """The key under which repeats of one question meet.

    NFKC (full-width to half-width), lower case, then only letters and digits: "怎么退货？" and
    " 怎么退货" give one key. Personal data is masked first and every masked span, order number
    (SO + 12 digits) and ticket number (T + 5 digits) becomes one "#", so the same question about
    another order or from another phone still counts as the same question.
    """
    folded = unicodedata.normalize("NFKC", mask_text(text)).casefold().replace(_KEY_SLOT, "")
    folded = _KEY_IDENTIFIERS.sub(_KEY_SLOT, folded)
    folded = _KEY_MASKED.sub(_KEY_SLOT, folded)
    key = "".join(ch for ch in folded if ch == _KEY_SLOT or unicodedata.category(ch)[0] in "LN")
    return key[:UNANSWERED_MAX_CHARS]


def _count_again(session: Session, key: str, moment: datetime) -> FaqUnanswered | None:
    # One UPDATE adds to the count, so that concurrent askers from two processes are all counted.
    # Typed as the column: a bare datetime in CASE would skip the UTC conversion SQLite relies on.
    asked = literal(moment, FaqUnanswered.last_asked_at.type)
    result = session.execute(
        update(FaqUnanswered)
        .where(FaqUnanswered.normalized_key == key)
        .values(
            count=FaqUnanswered.count + 1,
            last_asked_at=case(
                (FaqUnanswered.last_asked_at < asked, asked), else_=FaqUnanswered.last_asked_at
            ),
            updated_at=clock.now(),
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    stmt = select(FaqUnanswered).where(FaqUnanswered.normalized_key == key)
    return session.scalars(stmt.execution_options(populate_existing=True)).one()


def record_unanswered(
    session: Session, question: str, *, asked_at: datetime | None = None
) -> FaqUnanswered | None:
    """Queue a question the assistant could not answer, or count it again if it is queued already.

    The text is stored with personal data masked (`crm_store.privacy.mask_text`) and cut to
    `UNANSWERED_MAX_CHARS`. Repeats meet on `question_key` and keep the first wording. A question
    resolved or dismissed earlier keeps its status and only its count grows: a resolved one asked
    again usually means the index has not caught up yet, and `list_unanswered(status="resolved")`
    shows such counts. Empty input, or input of only punctuation, is ignored.

    Args:
        session: An open session; the caller commits.
        question: What the customer asked, as typed.
        asked_at: When; the CRM clock by default.

    Returns:
        The queued question, or None when the input was ignored.
    """
    text = _one_line(question[:_UNANSWERED_INPUT_CHARS])
    stored = mask_text(text)[:UNANSWERED_MAX_CHARS].strip()
    key = question_key(stored)
    if not key:
        return None
    moment = asked_at if asked_at is not None else clock.now()
    row = _count_again(session, key, moment)
    if row is not None:
        return row
    begin_write(session, FaqUnanswered)
    try:
        with session.begin_nested():
            row = FaqUnanswered(
                question=stored,
                normalized_key=key,
                count=1,
                first_asked_at=moment,
                last_asked_at=moment,
                status=UNANSWERED_STATUS_OPEN,
            )
            session.add(row)
    except IntegrityError:
        # Another process queued the same question first: count this ask on its row.
        row = _count_again(session, key, moment)
        if row is None:
            raise
    return row


def list_unanswered(
    session: Session, status: str = UNANSWERED_STATUS_OPEN, limit: int = 50
) -> list[FaqUnanswered]:
    """Queued questions of one status, the most asked first, then the most recently asked.

    Raises:
        InvalidFaq: Unknown status, or `limit` not between 1 and `UNANSWERED_LIST_MAX`.
    """
    if status not in UNANSWERED_STATUSES:
        raise InvalidFaq(f"状态只能是 {'、'.join(UNANSWERED_STATUSES)}", field="status")
    if not 1 <= limit <= UNANSWERED_LIST_MAX:
        raise InvalidFaq(f"limit 应在 1 到 {UNANSWERED_LIST_MAX} 之间", field="limit")
    stmt = (
        select(FaqUnanswered)
        .where(FaqUnanswered.status == status)
        .order_by(FaqUnanswered.count.desc(), FaqUnanswered.last_asked_at.desc(), FaqUnanswered.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def _locked_unanswered(session: Session, unanswered_id: int) -> FaqUnanswered:
    # Locked until commit, so that two staff resolving the same question cannot both succeed.
    begin_write(session, FaqUnanswered)
    row = session.get(FaqUnanswered, unanswered_id, with_for_update=True)
    if row is None:
        raise UnansweredNotFound(unanswered_id)
    return row


def resolve_unanswered(
    session: Session,
    unanswered_id: int,
    *,
    answer: str | None = None,
    category: str | None = None,
    faq_id: str | None = None,
    question: str | None = None,
    actor_id: str | None = None,
) -> Faq:
    """Turn a queued question into knowledge in one step, and mark it resolved by that FAQ.

    - `faq_id` of an existing FAQ (and no answer): the question becomes one more phrasing of it.
    - `answer`: a new FAQ with that answer and `category`, under `faq_id` if given (else a new id).

    The phrasing used is `question` if given (staff may tidy the customer's words), else the queued
    text. A phrasing the FAQ already has is not added twice. A dismissed question may still be
    resolved.

    Raises:
        UnansweredNotFound: No such queued question.
        FaqNotFound: `faq_id` without `answer` names no FAQ.
        FaqConflict: The question is resolved already, or `answer` is given with the id of an
            existing FAQ (which would overwrite it).
        InvalidFaq: Neither `answer` nor `faq_id`, `category` for an existing FAQ, or a value
            that breaks a rule of `create_faq` (e.g. a queued text longer than 200 characters:
            give a shorter `question`).
    """
    row = _locked_unanswered(session, unanswered_id)
    if row.status == UNANSWERED_STATUS_RESOLVED:
        raise FaqConflict(f"待解答问题 {unanswered_id} 已解决（FAQ {row.resolved_faq_id or '已删除'}）")
    phrasing = _check_question(question if question is not None else row.question)
    if answer is not None:
        if faq_id is not None and faq_id.strip() and session.get(Faq, faq_id.strip()) is not None:
            raise FaqConflict(f"FAQ {faq_id.strip()} 已存在：要加为它的备选问法，请不要同时提供答案")
        faq = create_faq(
            session,
            question=phrasing,
            answer=answer,
            category=category,
            faq_id=faq_id.strip() if faq_id is not None and faq_id.strip() else None,
            actor_id=actor_id,
        )
    elif faq_id is not None and faq_id.strip():
        if category is not None:
            raise InvalidFaq("分类只用于新建 FAQ；要改已有 FAQ 的分类，请编辑该 FAQ", field="category")
        faq = get_faq(session, faq_id)
        alts = _split_alts(faq.alt_questions)
        if phrasing != faq.question and phrasing not in alts:
            faq = update_faq(session, faq.faq_id, alt_questions=[*alts, phrasing], actor_id=actor_id)
    else:
        raise InvalidFaq("请提供答案（新建 FAQ），或已有 FAQ 的编号（加为备选问法）", field="answer")
    row.status = UNANSWERED_STATUS_RESOLVED
    row.resolved_faq_id = faq.faq_id
    _audit(session, "resolve_unanswered", faq.faq_id, actor_id, unanswered_id=row.id)
    session.flush()
    return faq


def dismiss_unanswered(session: Session, unanswered_id: int, *, actor_id: str | None = None) -> FaqUnanswered:
    """Set a queued question aside (off-topic, spam); dismissing it again changes nothing.

    Raises:
        UnansweredNotFound: No such queued question.
        FaqConflict: It is resolved already.
    """
    row = _locked_unanswered(session, unanswered_id)
    if row.status == UNANSWERED_STATUS_RESOLVED:
        raise FaqConflict(f"待解答问题 {unanswered_id} 已解决，不能再忽略")
    if row.status != UNANSWERED_STATUS_DISMISSED:
        row.status = UNANSWERED_STATUS_DISMISSED
        _audit(session, "dismiss_unanswered", None, actor_id, unanswered_id=row.id)
        session.flush()
    return row


# --------------------------------------------------------------------------------------------------
# Feedback and what the encoder learns from.


def record_feedback(
    session: Session, faq_id: str, helpful: bool, *, sender_id: str, query: str | None = None
) -> FaqFeedback:
    """Store a customer's verdict on an answer; a later verdict of the same conversation replaces it.

    Only a pseudonym of the conversation is kept (`conversation_key`), and `query` is masked like
    an unanswered question.

    Raises:
        FaqNotFound: No such FAQ (a vote on a FAQ deleted since stays counted; a new one is refused).
    """
    faq = get_faq(session, faq_id)
    key = conversation_key(sender_id)
    masked = mask_text(_one_line(query[:_UNANSWERED_INPUT_CHARS]))[:UNANSWERED_MAX_CHARS] if query else None
    stmt = select(FaqFeedback).where(FaqFeedback.faq_id == faq.faq_id, FaqFeedback.conversation_key == key)
    vote = session.scalar(stmt)
    if vote is None:
        begin_write(session, FaqFeedback)
        try:
            with session.begin_nested():
                vote = FaqFeedback(faq_id=faq.faq_id, helpful=helpful, conversation_key=key, query=masked)
                session.add(vote)
            return vote
        except IntegrityError:
            # A double click from two requests at once: the other one inserted, this one updates.
            vote = session.scalars(stmt.execution_options(populate_existing=True)).one()
    vote.helpful = helpful
    vote.query = masked or vote.query
    session.flush()
    return vote


@dataclass(frozen=True)
class FaqFeedbackStats:
    """The votes on one FAQ; `question` is None once the FAQ is deleted."""

    faq_id: str
    question: str | None
    helpful: int
    unhelpful: int

    @property
    def helpful_rate(self) -> float:
        """Share of helpful votes, 0 to 1."""
        return self.helpful / (self.helpful + self.unhelpful)


@dataclass(frozen=True)
class FeedbackSummary:
    """How well the answers work: the votes per FAQ, and the questions nobody could answer.

    `helpful_rate` (helpful votes / all votes, None before the first vote) is the deflection
    metric: the share of answered questions the customer did not need a person for.
    `unanswered_asks` counts every ask that found no answer, `unanswered_open` the distinct
    questions still waiting for staff.
    """

    faqs: list[FaqFeedbackStats]
    helpful: int
    unhelpful: int
    unanswered_asks: int
    unanswered_open: int

    @property
    def helpful_rate(self) -> float | None:
        """Share of helpful votes over all FAQs, or None without votes."""
        total = self.helpful + self.unhelpful
        return self.helpful / total if total else None


def feedback_summary(session: Session) -> FeedbackSummary:
    """Votes per FAQ, the FAQs with the most unhelpful votes first, and the totals."""
    helpful = func.sum(case((FaqFeedback.helpful == true(), 1), else_=0))
    unhelpful = func.sum(case((FaqFeedback.helpful == true(), 0), else_=1))
    stmt = (
        select(FaqFeedback.faq_id, Faq.question, helpful, unhelpful)
        .outerjoin(Faq, Faq.faq_id == FaqFeedback.faq_id)
        .group_by(FaqFeedback.faq_id, Faq.question)
    )
    stats = [
        FaqFeedbackStats(faq_id=faq_id, question=question, helpful=int(yes), unhelpful=int(no))
        for faq_id, question, yes, no in session.execute(stmt)
    ]
    stats.sort(key=lambda s: (-s.unhelpful, -(s.helpful + s.unhelpful), len(s.faq_id), s.faq_id))
    asks, open_questions = session.execute(
        select(
            func.coalesce(func.sum(FaqUnanswered.count), 0),
            func.coalesce(func.sum(case((FaqUnanswered.status == UNANSWERED_STATUS_OPEN, 1), else_=0)), 0),
        )
    ).one()
    return FeedbackSummary(
        faqs=stats,
        helpful=sum(s.helpful for s in stats),
        unhelpful=sum(s.unhelpful for s in stats),
        unanswered_asks=int(asks),
        unanswered_open=int(open_questions),
    )


def paraphrase_pairs(session: Session) -> list[tuple[str, str]]:
    """(paraphrase, faq_id) pairs to tune the encoder on, by FAQ id, without repeats.

    Every alternative phrasing of every FAQ, then every resolved question mapped to the FAQ that
    answers it (questions whose FAQ was deleted are left out). A paraphrase equal to its FAQ's main
    question teaches nothing and is left out too.
    """
    main: dict[str, str] = {}
    pairs: dict[tuple[str, str], None] = {}
    for faq in list_faqs(session):
        main[faq.faq_id] = faq.question.strip()
        for alt in faq.alt_question_list():
            if alt != main[faq.faq_id]:
                pairs.setdefault((alt, faq.faq_id), None)
    resolved = (
        select(FaqUnanswered.question, FaqUnanswered.resolved_faq_id)
        .where(FaqUnanswered.status == UNANSWERED_STATUS_RESOLVED, FaqUnanswered.resolved_faq_id.is_not(None))
        .order_by(FaqUnanswered.id)
    )
    for question, faq_id in session.execute(resolved):
        text = question.strip()
        if faq_id is not None and faq_id in main and text and text != main[faq_id]:
            pairs.setdefault((text, faq_id), None)
    order = {faq_id: position for position, faq_id in enumerate(main)}
    return sorted(pairs, key=lambda pair: order[pair[1]])
