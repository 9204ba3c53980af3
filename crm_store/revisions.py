"""The revision of the FAQ knowledge base: a cheap token that changes whenever any FAQ changes.

The retrieval engine polls `faq_revision` about once a second from each process that answers
questions, and rebuilds its index when the token differs from the one it built from. The token
joins three values read in one statement:

- the `knowledge_state` counter, which every FAQ write of `crm_store.faqs` and the CSV importer
  raises by one in the same transaction as the write. It alone catches a delete followed by an
  add, which leaves both the count and the newest `updated_at` as they were;
- the number of FAQs, which catches a row deleted by hand in SQL;
- the newest `updated_at`, which catches a row inserted or edited by any other code path.

Everything is read through the primary key and the `updated_at` index, plus a count of `faqs`.
"""

from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.ids import begin_write
from crm_store.models import Faq, KnowledgeState

FAQ_STATE: Final = "faqs"
"""The `knowledge_state` row counting FAQ writes (the migration seeds it)."""


def faq_revision(session: Session) -> str:
    """An opaque token that differs after any FAQ was added, edited or deleted and committed.

    One SELECT of three scalar subqueries; it works on a store that has no counter row yet.
    """
    counter = select(KnowledgeState.revision).where(KnowledgeState.name == FAQ_STATE).scalar_subquery()
    count = select(func.count()).select_from(Faq).scalar_subquery()
    newest = select(func.max(Faq.updated_at)).scalar_subquery()
    revision, rows, latest = session.execute(select(counter, count, newest)).one()
    stamp = latest.isoformat() if latest is not None else "-"
    return f"{revision or 0}:{rows}:{stamp}"


def bump_faq_revision(session: Session) -> None:
    """Raise the FAQ counter by one, inside the caller's transaction (the caller commits).

    On PostgreSQL the UPDATE locks the counter row until commit, so FAQ writes queue behind each
    other; they are rare and short, and the counter can then never skip or repeat.
    """
    stmt = (
        update(KnowledgeState)
        .where(KnowledgeState.name == FAQ_STATE)
        .values(revision=KnowledgeState.revision + 1, updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount:  # type: ignore[attr-defined]
        return
    # The row was removed by hand: put it back, or count on the one a concurrent writer just added.
    begin_write(session, KnowledgeState)
    try:
        with session.begin_nested():
            session.add(KnowledgeState(name=FAQ_STATE, revision=1))
    except IntegrityError:
        session.execute(stmt)
