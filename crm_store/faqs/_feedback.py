"""Customers' verdicts on answers, and the helpful rate that measures deflection."""

from dataclasses import dataclass

from sqlalchemy import case, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store.faq_rules import one_line
from crm_store.faqs._catalogue import get_faq
from crm_store.faqs._unanswered import UNANSWERED_INPUT_CHARS, UNANSWERED_MAX_CHARS
from crm_store.ids import begin_write
from crm_store.models import Faq, FaqFeedback, FaqUnanswered
from crm_store.privacy import conversation_key, mask_text
from crm_store.vocab import UNANSWERED_STATUS_OPEN


def record_feedback(
    session: Session, faq_id: str, helpful: bool, *, sender_id: str, query: str | None = None
) -> FaqFeedback:
    """Store a customer's verdict on an answer; a later verdict of the same conversation replaces it.

    Only a pseudonym of the conversation is kept (`conversation_key`), and `query` is masked like
    an unanswered question.

    Raises:
        NotFound: `faq_not_found`, no such FAQ (a vote on a FAQ deleted since stays counted; a new
            one is refused).
    """
    faq = get_faq(session, faq_id)
    key = conversation_key(sender_id)
    masked = mask_text(one_line(query[:UNANSWERED_INPUT_CHARS]))[:UNANSWERED_MAX_CHARS] if query else None
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
