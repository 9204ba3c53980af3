"""What the encoder learns from: the knowledge base's own phrasings of its FAQs."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.faqs._catalogue import list_faqs
from crm_store.models import FaqUnanswered
from crm_store.vocab import UNANSWERED_STATUS_RESOLVED


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
