"""The API's knowledge base: loaded in the background, searched at `GET /api/faq/search`.

Loading the encoder takes seconds, so it never holds up start-up: the app's
`knowledge.holder.KnowledgeHolder` (`app.state.knowledge`, created in the lifespan) loads it in a
thread, started with the API by `crmbot up` (KNOWLEDGE_WARM_UP=1) or else by the first search, and
until it is ready the search answers 503 with a Chinese "please retry" instead of making the client
wait.
"""

import logging
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query, Request, status

from api.schemas.common import ErrorDetail, clean_message
from api.schemas.knowledge import FaqHitOut, FaqSearchOut
from api.texts import wording
from knowledge.holder import KnowledgeHolder

logger = logging.getLogger(__name__)

KNOWLEDGE_LOADING: Final = wording("knowledge.loading")
KNOWLEDGE_FAILED: Final = wording("knowledge.failed")
EMPTY_QUERY: Final = wording("knowledge.empty_query")
MAX_QUERY_CHARS: Final = 2000

router = APIRouter(tags=["faqs"])


@router.get(
    "/faq/search",
    response_model=FaqSearchOut,
    responses={
        422: {"model": ErrorDetail, "description": "Empty or over-long question."},
        503: {"model": ErrorDetail, "description": "The knowledge base is loading or unavailable."},
    },
)
def search_faqs(
    request: Request,
    q: Annotated[str, Query(description="The question, as a customer would type it.")],
    top_k: Annotated[int, Query(ge=1, le=20)] = 5,
) -> FaqSearchOut:
    """Rank the FAQs for a question and say whether the assistant would answer, suggest or not."""
    question = clean_message(q).strip()
    if not question:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=EMPTY_QUERY)
    if len(question) > MAX_QUERY_CHARS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, detail=f"问题太长了，请控制在 {MAX_QUERY_CHARS} 字以内。"
        )
    holder: KnowledgeHolder = request.app.state.knowledge
    service = holder.get()
    if service is None:
        detail = KNOWLEDGE_FAILED if holder.state == "failed" else KNOWLEDGE_LOADING
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail, headers={"Retry-After": "5"})
    result = service.search(question, top_k=top_k)
    return FaqSearchOut(
        decision=result.decision,
        hits=[
            FaqHitOut(faq_id=h.faq_id, score=round(h.score, 4), question=h.question, answer=h.answer)
            for h in result.hits
        ],
    )
