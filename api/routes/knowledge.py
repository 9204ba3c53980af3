"""The API's knowledge base: loaded in the background, searched at `GET /api/faq/search`.

Loading the encoder takes seconds, so it never holds up start-up: `crmbot up` starts it with
the API (KNOWLEDGE_WARM_UP=1), otherwise the first search does, and until it is ready the
search answers 503 with a Chinese "please retry" instead of making the client wait.
"""

import logging
import threading
from typing import Annotated, Final, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from api.schemas.common import ErrorDetail, clean_message
from knowledge.service import KnowledgeService
from knowledge.types import Decision

logger = logging.getLogger(__name__)

KNOWLEDGE_LOADING: Final = "知识库正在加载，请几秒后再试。"
KNOWLEDGE_FAILED: Final = "知识库暂时不可用，请联系管理员查看服务日志。"
EMPTY_QUERY: Final = "请输入要检索的问题。"
MAX_QUERY_CHARS: Final = 2000


class KnowledgeHolder:
    """Loads the knowledge service once, in a thread, and hands it out when ready."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._service: KnowledgeService | None = None
        self._failed = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> Literal["idle", "loading", "ready", "failed"]:
        if self._service is not None:
            return "ready"
        if self._failed:
            return "failed"
        return "loading" if self._thread is not None else "idle"

    def start_loading(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="knowledge-load", daemon=True)
                self._thread.start()

    def get(self) -> KnowledgeService | None:
        """The service if loaded; otherwise start loading it and return None."""
        if self._service is None:
            self.start_loading()
        return self._service

    def wait(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def notify_changed(self) -> None:
        """FAQs were edited through this API: update the index now (if it is loaded)."""
        if self._service is not None:
            self._service.notify_changed()

    def _load(self) -> None:
        try:
            self._service = KnowledgeService(self._sessions)
        except Exception:
            self._failed = True
            logger.exception("knowledge base could not be loaded")


class FaqHitOut(BaseModel):
    faq_id: str
    score: float = Field(
        description="Relevance, about 0 to 1: the best phrasing's cosine/BM25 mix with query-answer "
        "relevance (knowledge/index.py), compared with the calibrated thresholds (knowledge/decision.py)."
    )
    question: str = Field(description="The phrasing of the FAQ that matched best.")
    answer: str


class FaqSearchOut(BaseModel):
    decision: Decision = Field(
        description="answer: reply with the first hit; suggest: offer the top three; none."
    )
    hits: list[FaqHitOut]


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
