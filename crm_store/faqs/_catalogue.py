"""The FAQs themselves: list, read, create, update and delete, each write audited and counted.

Every write sets the FAQ's `updated_at` (through `crm_store.faq_rules.FaqFields`), raises the
knowledge revision (`crm_store.revisions`) and adds an audit row, in the caller's transaction.
"""

from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.errors import Conflict, NotFound
from crm_store.faq_rules import check_id, checked_fields, split_alts
from crm_store.ids import add_with_new_id, begin_write
from crm_store.models import AuditLog, Faq
from crm_store.revisions import bump_faq_revision

NEW_FAQ_PREFIX: Final = "F"
NEW_FAQ_WIDTH: Final = 3


def audit(session: Session, action: str, faq_id: str | None, actor_id: str | None, **detail: Any) -> None:
    """Add an audit row for a change to the knowledge base (`actor_id` None: the system)."""
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


def list_faqs(session: Session) -> list[Faq]:
    """Every FAQ, by id (F99 before F100)."""
    return list(session.scalars(select(Faq).order_by(func.length(Faq.faq_id), Faq.faq_id)))


def get_faq(session: Session, faq_id: str) -> Faq:
    """The FAQ with that id.

    Raises:
        NotFound: `faq_not_found` (data: faq_id), no such FAQ.
    """
    faq = session.get(Faq, faq_id.strip()) if faq_id.strip() else None
    if faq is None:
        raise NotFound("faq_not_found", faq_id=faq_id)
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
        Invalid: A value breaks a rule of `crm_store.faq_rules`.
        Conflict: `faq_id_taken` (data: faq_id), `faq_id` is taken.
    """
    fields = checked_fields(question=question, answer=answer, category=category, alt_questions=alt_questions)
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
        wanted = check_id(faq_id)
        if session.get(Faq, wanted) is not None:
            raise Conflict("faq_id_taken", faq_id=wanted)
        begin_write(session, Faq)
        faq = build(wanted)
        try:
            with session.begin_nested():
                session.add(faq)
        except IntegrityError:
            # Another writer took the id between the check and the insert.
            raise Conflict("faq_id_taken", faq_id=wanted) from None
    bump_faq_revision(session)
    audit(session, "create_faq", faq.faq_id, actor_id)
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
        NotFound: `faq_not_found`, no such FAQ.
        Invalid: A value breaks a rule of `crm_store.faq_rules`.
    """
    faq = get_faq(session, faq_id)
    new_question = question if question is not None else faq.question
    fields = checked_fields(
        question=new_question,
        answer=answer if answer is not None else faq.answer,
        category=category if category is not None else faq.category,
        # Kept phrasings are checked again: the main question may now equal one of them.
        alt_questions=alt_questions if alt_questions is not None else split_alts(faq.alt_questions),
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
    audit(session, "update_faq", faq.faq_id, actor_id, fields=changed)
    session.flush()
    return faq


def delete_faq(session: Session, faq_id: str, *, actor_id: str | None = None) -> None:
    """Delete a FAQ. Its feedback stays in the statistics; questions resolved by it keep their status.

    Raises:
        NotFound: `faq_not_found`, no such FAQ.
    """
    faq = get_faq(session, faq_id)
    session.delete(faq)
    bump_faq_revision(session)
    audit(session, "delete_faq", faq.faq_id, actor_id)
    session.flush()
