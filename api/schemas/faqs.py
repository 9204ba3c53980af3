"""Request and response bodies of the staff FAQ endpoints (`api.routes.faqs`).

Request limits here only bound the size of a body. The FAQ rules themselves (question at most 200
characters, answer at most 2000, at most 30 alternative phrasings...) are checked by
`crm_store.faq_rules`; `api/errors.py` words a broken rule's code as the 422 detail.
"""

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from crm_store import clock
from crm_store.faqs import FaqFeedbackStats, FeedbackSummary
from crm_store.models import Faq, FaqUnanswered

BODY_TEXT_MAX: Final = 10_000
BODY_LIST_MAX: Final = 1_000

BodyText = Annotated[str, Field(max_length=BODY_TEXT_MAX)]
UnansweredStatus = Literal["open", "resolved", "dismissed"]


class _In(BaseModel):
    # A misspelt field ("alt_question") must fail loudly, not be dropped in silence.
    model_config = ConfigDict(extra="forbid")


class FaqCreateIn(_In):
    """A new FAQ. Without `faq_id` the next free number is used (F025 after F024)."""

    faq_id: str | None = Field(
        default=None, max_length=64, description="Letters, digits, `-_.`, at most 32.", examples=["F100"]
    )
    category: BodyText | None = Field(default=None, examples=["售后"])
    question: BodyText = Field(description="At most 200 characters.", examples=["怎么申请退货？"])
    answer: BodyText = Field(
        description="At most 2000 characters; line breaks are kept.",
        examples=["签收后7天内商品完好可申请无理由退货。"],
    )
    alt_questions: list[BodyText] = Field(
        default_factory=list,
        max_length=BODY_LIST_MAX,
        description="Other phrasings, at most 30 of at most 200 characters; no `|` inside one.",
        examples=[["如何退货", "退货流程是什么"]],
    )


class FaqUpdateIn(_In):
    """Fields to change; absent fields stay. `category: null` clears it; `alt_questions` replaces the list."""

    category: BodyText | None = None
    question: BodyText | None = None
    answer: BodyText | None = None
    alt_questions: list[BodyText] | None = Field(default=None, max_length=BODY_LIST_MAX)


class FaqOut(BaseModel):
    """A FAQ as staff edit it."""

    faq_id: str
    category: str | None
    question: str
    answer: str
    alt_questions: list[str]
    updated_at: datetime

    @classmethod
    def of(cls, faq: Faq) -> "FaqOut":
        """The FAQ with its phrasings as a list and its time in Beijing time."""
        return cls(
            faq_id=faq.faq_id,
            category=faq.category,
            question=faq.question,
            answer=faq.answer,
            alt_questions=faq.alt_question_list(),
            updated_at=faq.updated_at.astimezone(clock.TZ),
        )


class ResolveIn(_In):
    """How to turn a queued question into knowledge: `answer` for a new FAQ, or `faq_id` of an
    existing one to add the question as another phrasing of it."""

    answer: BodyText | None = Field(default=None, description="Creates a new FAQ with this answer.")
    category: BodyText | None = Field(default=None, description="Category of the new FAQ.")
    faq_id: str | None = Field(
        default=None,
        max_length=64,
        description="An existing FAQ to add the question to; with `answer`, the id of the new FAQ.",
    )
    question: BodyText | None = Field(
        default=None, description="The wording to use instead of the customer's (e.g. tidied up)."
    )


class UnansweredOut(BaseModel):
    """A question the assistant could not answer, with personal data masked."""

    id: int
    question: str
    count: int = Field(description="How often it was asked.")
    first_asked_at: datetime
    last_asked_at: datetime
    status: UnansweredStatus
    resolved_faq_id: str | None

    @classmethod
    def of(cls, row: FaqUnanswered) -> "UnansweredOut":
        """The queued question, its times in Beijing time."""
        # Validated rather than constructed: `status` is a plain string column, checked here.
        return cls.model_validate(
            {
                "id": row.id,
                "question": row.question,
                "count": row.count,
                "first_asked_at": row.first_asked_at.astimezone(clock.TZ),
                "last_asked_at": row.last_asked_at.astimezone(clock.TZ),
                "status": row.status,
                "resolved_faq_id": row.resolved_faq_id,
            }
        )


class FaqFeedbackOut(BaseModel):
    """The votes on one FAQ; `question` is null once the FAQ is deleted."""

    faq_id: str
    question: str | None
    helpful: int
    unhelpful: int
    helpful_rate: float

    @classmethod
    def of(cls, stats: FaqFeedbackStats) -> "FaqFeedbackOut":
        return cls(
            faq_id=stats.faq_id,
            question=stats.question,
            helpful=stats.helpful,
            unhelpful=stats.unhelpful,
            helpful_rate=stats.helpful_rate,
        )


class FaqStatsOut(BaseModel):
    """How well the FAQ answers work."""

    helpful: int
    unhelpful: int
    helpful_rate: float | None = Field(
        description="Helpful votes / all votes (the deflection rate); null before the first vote."
    )
    unanswered_asks: int = Field(description="Every ask the assistant found no answer for.")
    unanswered_open: int = Field(description="Distinct unanswered questions waiting for staff.")
    faqs: list[FaqFeedbackOut] = Field(description="Per FAQ, the most unhelpful votes first.")

    @classmethod
    def of(cls, summary: FeedbackSummary) -> "FaqStatsOut":
        return cls(
            helpful=summary.helpful,
            unhelpful=summary.unhelpful,
            helpful_rate=summary.helpful_rate,
            unanswered_asks=summary.unanswered_asks,
            unanswered_open=summary.unanswered_open,
            faqs=[FaqFeedbackOut.of(stats) for stats in summary.faqs],
        )
