"""The questions the assistant could not answer, queued for staff and turned into knowledge.

The assistant records what it could not answer (`record_unanswered`); staff see the most asked
first (`list_unanswered`) and turn one into a new FAQ or an extra phrasing of an existing one with
a single call (`resolve_unanswered`), or dismiss it (`dismiss_unanswered`).
"""

import re
import unicodedata
from datetime import datetime
from typing import Final

from sqlalchemy import case, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.errors import Conflict, Invalid, NotFound
from crm_store.faq_rules import check_question, one_line, split_alts
from crm_store.faqs._catalogue import audit, create_faq, get_faq, update_faq
from crm_store.ids import begin_write
from crm_store.models import Faq, FaqUnanswered
from crm_store.privacy import mask_text
from crm_store.vocab import (
    UNANSWERED_STATUS_DISMISSED,
    UNANSWERED_STATUS_OPEN,
    UNANSWERED_STATUS_RESOLVED,
    UNANSWERED_STATUSES,
)

UNANSWERED_MAX_CHARS: Final = 500
"""An unanswered question is stored cut to this length (after masking)."""
UNANSWERED_LIST_MAX: Final = 500
"""Most unanswered questions one `list_unanswered` call returns."""

# A question longer than any stored one cannot need more text to be masked and cut correctly.
UNANSWERED_INPUT_CHARS: Final = 4 * UNANSWERED_MAX_CHARS
_KEY_SLOT: Final = "#"
_KEY_IDENTIFIERS: Final = re.compile(r"(?<![a-z0-9])(?:so[0-9]{12}|t[0-9]{5})(?![0-9])")
_KEY_MASKED: Final = re.compile(r"[0-9*@]*\*[0-9*@]*")


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
    text = one_line(question[:UNANSWERED_INPUT_CHARS])
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
        Invalid: `unanswered_status_unknown` (data: allowed, the statuses), or
            `unanswered_limit_out_of_range` (data: min, max), `limit` not between 1 and
            `UNANSWERED_LIST_MAX`.
    """
    if status not in UNANSWERED_STATUSES:
        raise Invalid("unanswered_status_unknown", field="status", allowed=UNANSWERED_STATUSES)
    if not 1 <= limit <= UNANSWERED_LIST_MAX:
        raise Invalid("unanswered_limit_out_of_range", field="limit", min=1, max=UNANSWERED_LIST_MAX)
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
        raise NotFound("unanswered_not_found", unanswered_id=unanswered_id)
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
        NotFound: `unanswered_not_found`, no such queued question; `faq_not_found`, `faq_id`
            without `answer` names no FAQ.
        Conflict: `unanswered_already_resolved` (data: unanswered_id, faq_id) or
            `unanswered_resolved_by_deleted_faq` (data: unanswered_id), the question is resolved
            already; `faq_exists_answer_given` (data: faq_id), `answer` is given with the id of an
            existing FAQ (which would overwrite it).
        Invalid: `resolve_needs_answer_or_faq`, neither `answer` nor `faq_id`;
            `category_only_for_new_faq`, `category` for an existing FAQ; or a value that breaks a
            rule of `crm_store.faq_rules` (e.g. a queued text longer than 200 characters: give a
            shorter `question`).
    """
    row = _locked_unanswered(session, unanswered_id)
    if row.status == UNANSWERED_STATUS_RESOLVED:
        if not row.resolved_faq_id:
            raise Conflict("unanswered_resolved_by_deleted_faq", unanswered_id=unanswered_id)
        raise Conflict("unanswered_already_resolved", unanswered_id=unanswered_id, faq_id=row.resolved_faq_id)
    phrasing = check_question(question if question is not None else row.question)
    if answer is not None:
        if faq_id is not None and faq_id.strip() and session.get(Faq, faq_id.strip()) is not None:
            raise Conflict("faq_exists_answer_given", faq_id=faq_id.strip())
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
            raise Invalid("category_only_for_new_faq", field="category")
        faq = get_faq(session, faq_id)
        alts = split_alts(faq.alt_questions)
        if phrasing != faq.question and phrasing not in alts:
            faq = update_faq(session, faq.faq_id, alt_questions=[*alts, phrasing], actor_id=actor_id)
    else:
        raise Invalid("resolve_needs_answer_or_faq", field="answer")
    row.status = UNANSWERED_STATUS_RESOLVED
    row.resolved_faq_id = faq.faq_id
    audit(session, "resolve_unanswered", faq.faq_id, actor_id, unanswered_id=row.id)
    session.flush()
    return faq


def dismiss_unanswered(session: Session, unanswered_id: int, *, actor_id: str | None = None) -> FaqUnanswered:
    """Set a queued question aside (off-topic, spam); dismissing it again changes nothing.

    Raises:
        NotFound: `unanswered_not_found`, no such queued question.
        Conflict: `unanswered_resolved_not_dismissable` (data: unanswered_id), it is resolved
            already.
    """
    row = _locked_unanswered(session, unanswered_id)
    if row.status == UNANSWERED_STATUS_RESOLVED:
        raise Conflict("unanswered_resolved_not_dismissable", unanswered_id=unanswered_id)
    if row.status != UNANSWERED_STATUS_DISMISSED:
        row.status = UNANSWERED_STATUS_DISMISSED
        audit(session, "dismiss_unanswered", None, actor_id, unanswered_id=row.id)
        session.flush()
    return row
