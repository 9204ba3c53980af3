"""What the knowledge base hands to its callers: FAQ entries in, ranked hits and a decision out."""

from dataclasses import dataclass, field
from typing import Literal

# answer: confident enough to reply with the top answer; suggest: offer the top three as
# choices; none: say honestly that no FAQ fits (and queue the question for staff).
Decision = Literal["answer", "suggest", "none"]


@dataclass(frozen=True)
class FaqEntry:
    """One curated FAQ as the index sees it."""

    faq_id: str
    question: str
    answer: str
    alt_questions: tuple[str, ...] = ()
    category: str | None = None

    def phrasings(self) -> tuple[str, ...]:
        """The main question first, then the alternatives, without blanks or repeats."""
        seen: dict[str, None] = {}
        for text in (self.question, *self.alt_questions):
            stripped = text.strip()
            if stripped:
                seen.setdefault(stripped, None)
        return tuple(seen)


@dataclass(frozen=True)
class Hit:
    """A FAQ found for a query: `question` is the phrasing that matched best."""

    faq_id: str
    score: float
    question: str
    answer: str


@dataclass(frozen=True)
class SearchResult:
    decision: Decision
    hits: list[Hit] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "decision": self.decision,
            "hits": [
                {"faq_id": h.faq_id, "score": round(h.score, 4), "question": h.question, "answer": h.answer}
                for h in self.hits
            ],
        }
