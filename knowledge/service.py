"""The knowledge base of one process: the FAQ index kept in step with the CRM store.

The API and the action server each hold one. Both watch the store's FAQ revision (one cheap
query, at most every `refresh_interval_s`): when another process has added, edited or deleted
a FAQ, this one re-encodes only what changed, in a background thread, while searches go on
against the previous snapshot. The process that made the edit calls `notify_changed()` and
sees it at once.

The index is persisted under `var/knowledge/`, so a restart re-encodes nothing that has not
changed since.
"""

import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from crm_store import faqs as faq_store
from knowledge.decision import Thresholds, decide
from knowledge.encoder import Encoder, SentenceEncoder
from knowledge.index import FaqIndex, IndexConfig, SyncReport
from knowledge.settings import KnowledgeSettings, get_knowledge_settings
from knowledge.types import FaqEntry, Hit, SearchResult

logger = logging.getLogger(__name__)

SUGGESTIONS = 3


def entries_from_store(session: Session) -> list[FaqEntry]:
    """Every FAQ in the store, as the index sees it."""
    return [
        FaqEntry(
            faq_id=faq.faq_id,
            question=faq.question,
            answer=faq.answer,
            alt_questions=tuple(faq.alt_question_list()),
            category=faq.category,
        )
        for faq in faq_store.list_faqs(session)
    ]


def index_config(settings: KnowledgeSettings) -> IndexConfig:
    return IndexConfig(
        kind=settings.index_kind,
        flat_max_vectors=settings.flat_max_vectors,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_search=settings.hnsw_ef_search,
        dense_weight=settings.dense_weight,
        answer_weight=settings.answer_weight,
        crowding_weight=settings.crowding_weight,
    )


def thresholds(settings: KnowledgeSettings) -> Thresholds:
    return Thresholds(
        answer_score=settings.answer_score,
        answer_margin=settings.answer_margin,
        suggest_score=settings.suggest_score,
    )


class KnowledgeService:
    """Search the FAQs of the store; keep the index in step with it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: KnowledgeSettings | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        self.settings = settings or get_knowledge_settings()
        self._sessions = sessions
        self._index = FaqIndex(
            encoder or SentenceEncoder(self.settings.model_path()), index_config(self.settings)
        )
        self._thresholds = thresholds(self.settings)
        self._revision: str | None = None
        self._checked_at = 0.0
        self._refresh_lock = threading.Lock()
        self._background: threading.Thread | None = None
        if self._index.load(self.index_dir):
            logger.info("knowledge index loaded from %s (%d FAQs)", self.index_dir, len(self._index))
        self.refresh()

    @property
    def index_dir(self) -> Path:
        return self.settings.dir / "faq-index"

    @property
    def index(self) -> FaqIndex:
        return self._index

    def search(self, query: str, top_k: int = 5) -> SearchResult:
        """Rank the FAQs for `query` and decide whether to answer, suggest or say none fits."""
        self._refresh_in_background_if_due()
        ranked = self._index.rank(query, top_k=max(top_k, SUGGESTIONS))
        decision = decide(ranked, self._thresholds)
        hits = [Hit(s.entry.faq_id, s.score, s.matched, s.entry.answer) for s in ranked[: max(top_k, 0)]]
        return SearchResult(decision=decision, hits=hits)

    def entry(self, faq_id: str) -> FaqEntry | None:
        """The FAQ with this id as currently indexed, or None."""
        return self._index.snapshot.entries.get(faq_id)

    def notify_changed(self) -> None:
        """This process changed FAQs: bring the index up to date before returning."""
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> SyncReport | None:
        """Re-read the store's FAQs if their revision moved; None when nothing was read.

        A store that cannot be read leaves the index as it was (logged), so search keeps working.
        """
        with self._refresh_lock:
            self._checked_at = time.monotonic()
            try:
                with self._sessions() as session:
                    revision = faq_store.faq_revision(session)
                    if not force and revision == self._revision:
                        return None
                    entries = entries_from_store(session)
            except SQLAlchemyError as exc:
                logger.warning(
                    "knowledge index not refreshed: the store is unavailable (%s)", type(exc).__name__
                )
                return None
            report = self._index.sync(entries)
            self._revision = revision
            if report.touched:
                self._save()
            return report

    def wait_for_refresh(self, timeout: float = 30.0) -> None:
        """Block until a background refresh (if any) has finished; for tests and the CLI."""
        thread = self._background
        if thread is not None:
            thread.join(timeout)

    def _refresh_in_background_if_due(self) -> None:
        if time.monotonic() - self._checked_at < self.settings.refresh_interval_s:
            return
        if self._background is not None and self._background.is_alive():
            return
        self._checked_at = time.monotonic()
        self._background = threading.Thread(
            target=self._refresh_quietly, name="knowledge-refresh", daemon=True
        )
        self._background.start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:  # a failed refresh must never take search down with it
            logger.exception("knowledge index refresh failed; searching the previous FAQs")

    def _save(self) -> None:
        try:
            with _directory_lock(self.settings.dir):
                self._index.save(self.index_dir)
        except OSError as exc:
            logger.warning("knowledge index not persisted to %s (%s)", self.index_dir, type(exc).__name__)


@contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    # The API and the action server may save at the same moment; one at a time.
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
