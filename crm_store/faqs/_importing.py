"""Import FAQs from a file staff prepared (`crmbot faq import FILE`): faqs.csv-format CSV, or JSON.

A CSV row is checked by `crm_store.importer.check_faq_row`, the check `crmbot import DIR` applies
to faqs.csv, so one bad row gets one reason from both commands. A JSON entry is checked for its
shape here, then by the same FAQ rules. Reasons are worded from their codes by
`crm_store.importer.faq_reason`.
"""

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.errors import Invalid
from crm_store.faq_rules import FaqFields, check_id, checked_fields, split_alts
from crm_store.faqs._catalogue import NEW_FAQ_PREFIX, NEW_FAQ_WIDTH, audit
from crm_store.ids import add_with_new_id, begin_write
from crm_store.importer import NOT_UTF8, FaqRow, FileUnreadable, check_faq_row, faq_reason, read_csv_rows
from crm_store.models import Faq
from crm_store.revisions import bump_faq_revision

logger = logging.getLogger(__name__)

_ID_CHUNK: Final = 500


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
    fields: FaqFields


def _csv_entries(path: Path, report: FaqImportReport) -> Iterator[_Entry]:
    for line, cells in read_csv_rows(path, tuple(FaqRow.model_fields)):
        report.read += 1
        if isinstance(cells, str):
            report.errors.append(FaqImportProblem(path.name, str(line), cells))
            continue
        checked = check_faq_row(cells)
        if isinstance(checked, str):
            report.errors.append(FaqImportProblem(path.name, str(line), checked))
            continue
        yield _Entry(str(line), checked.faq_id, checked.fields)


def _text_or_none(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Invalid("faq_entry_not_text", field=key)


def _json_entry(item: object) -> tuple[str | None, FaqFields]:
    if not isinstance(item, dict):
        raise Invalid("faq_entry_not_an_object")
    faq_id = _text_or_none(item, "faq_id")
    question = _text_or_none(item, "question")
    answer = _text_or_none(item, "answer")
    if question is None:
        raise Invalid("faq_entry_missing", field="question")
    if answer is None:
        raise Invalid("faq_entry_missing", field="answer")
    alts = item.get("alt_questions")
    if alts is None:
        alt_list: list[str] = []
    elif isinstance(alts, str):
        alt_list = split_alts(alts)
    elif isinstance(alts, list) and all(isinstance(alt, str) for alt in alts):
        alt_list = alts
    else:
        raise Invalid("faq_entry_alt_questions_type", field="alt_questions")
    fields = checked_fields(
        question=question, answer=answer, category=_text_or_none(item, "category"), alt_questions=alt_list
    )
    return (check_id(faq_id) if faq_id is not None and faq_id.strip() else None), fields


def _json_entries(path: Path, report: FaqImportReport) -> Iterator[_Entry]:
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        report.errors.append(FaqImportProblem(path.name, "1", NOT_UTF8))
        return
    except json.JSONDecodeError as exc:
        reason = faq_reason("faq_json_invalid", line=exc.lineno, column=exc.colno)
        report.errors.append(FaqImportProblem(path.name, str(exc.lineno), reason))
        return
    items = document.get("faqs") if isinstance(document, dict) else document
    if not isinstance(items, list):
        report.errors.append(FaqImportProblem(path.name, "1", faq_reason("faq_json_not_a_list")))
        return
    for index, item in enumerate(items, start=1):
        report.read += 1
        try:
            faq_id, fields = _json_entry(item)
        except Invalid as exc:
            report.errors.append(FaqImportProblem(path.name, f"#{index}", faq_reason(exc.code, **exc.data)))
            continue
        yield _Entry(f"#{index}", faq_id, fields)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _ID_CHUNK):
        yield values[start : start + _ID_CHUNK]


def load_faq_file(session: Session, path: Path, *, actor_id: str | None = None) -> FaqImportReport:
    """Import FAQs from a `faqs.csv`-format CSV file or a JSON file; upsert, never delete.

    CSV: the columns of the import format (faq_id, category, question, answer, alt_questions with
    phrasings separated by `|`), checked as `crmbot import` checks faqs.csv
    (`crm_store.importer.check_faq_row`). JSON: a list of objects, or {"faqs": [...]}, each with
    question and answer, optionally faq_id, category and alt_questions (a list, or one text
    separated by `|`), checked by the same FAQ rules.

    An entry with an id updates that FAQ or adds it. A JSON entry without an id updates the FAQ
    with exactly the same question, else is added under a new id, so that importing a file again
    changes nothing. When one id appears twice the later entry wins. A bad entry is reported as
    `file:line: reason` (JSON: `file:#n: reason`, n counting from 1) and the good ones are kept.
    Unchanged FAQs are not touched (their `updated_at` stays, so the index need not re-encode them).

    Args:
        session: An open session; the caller commits, in one transaction.
        path: A `.csv` or `.json` file in UTF-8.
        actor_id: Who imports, for the audit log (None: the system).

    Returns:
        What was read, inserted, updated and left unchanged, and each refused entry with its reason.

    Raises:
        Invalid: `faq_file_type`, the file is neither `.csv` nor `.json`.
        OSError: The file cannot be opened.
    """
    report = FaqImportReport(path.name)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise Invalid("faq_file_type")
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
        audit(
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
    session: Session, faq: Faq | None, fields: FaqFields, report: FaqImportReport, faq_id: str | None
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
