"""Response bodies of `GET /api/faq/search` (`api.routes.knowledge`)."""

from pydantic import BaseModel, Field

from knowledge.types import Decision

# No class docstrings: pydantic would publish them as schema descriptions, which these bodies
# have never had in the OpenAPI document.


class FaqHitOut(BaseModel):
    faq_id: str
    score: float = Field(
        description="Relevance, about 0 to 1: the best phrasing's cosine/BM25 mix with query-answer "
        "relevance (knowledge/index/), compared with the calibrated thresholds (knowledge/decision.py)."
    )
    question: str = Field(description="The phrasing of the FAQ that matched best.")
    answer: str


class FaqSearchOut(BaseModel):
    decision: Decision = Field(
        description="answer: reply with the first hit; suggest: offer the top three; none."
    )
    hits: list[FaqHitOut]
