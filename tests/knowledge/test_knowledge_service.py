"""The knowledge base kept in step with the store: persistence, incremental updates, concurrency."""

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_store.faqs import create_faq, delete_faq, update_faq
from knowledge.encoder import SentenceEncoder, Vectors
from knowledge.service import KnowledgeService
from knowledge.settings import KnowledgeSettings


class CountingEncoder:
    """The real encoder, counting how many texts it was asked to encode."""

    def __init__(self, inner: SentenceEncoder) -> None:
        self.inner = inner
        self.encoded = 0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def encode(self, texts: list[str], *, passage: bool = False) -> Vectors:
        self.encoded += len(texts)
        return self.inner.encode(texts, passage=passage)


@pytest.fixture
def settings(tmp_path: Path) -> KnowledgeSettings:
    return KnowledgeSettings(dir=tmp_path / "knowledge", refresh_interval_s=0.0)


def test_the_demo_faqs_are_searchable(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings
) -> None:
    service = KnowledgeService(demo_store, settings, encoder)

    result = service.search("运费怎么算的", top_k=3)
    assert result.decision == "answer"
    assert result.hits[0].faq_id == "F004"
    assert "满99元包邮" in result.hits[0].answer
    assert len(result.hits) == 3


def test_a_restart_loads_the_saved_index_without_encoding_again(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings
) -> None:
    first = CountingEncoder(encoder)
    before = KnowledgeService(demo_store, settings, first).search("能开专票吗")
    assert first.encoded > 48  # every phrasing and answer of the 24 demo FAQs, then the query

    again = CountingEncoder(encoder)
    after = KnowledgeService(demo_store, settings, again).search("能开专票吗")
    assert again.encoded == 1  # only the query
    assert after == before


def test_answers_are_encoded_only_when_the_score_reads_them(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings
) -> None:
    without = CountingEncoder(encoder)
    unweighted = settings.model_copy(update={"answer_weight": 0.0})
    KnowledgeService(demo_store, unweighted, without).search("能开专票吗")
    phrasings = without.encoded - 1

    # The same saved index, read by a process that weighs answers: it cannot score with answer
    # vectors it does not have, so it rebuilds rather than silently ignoring the answers.
    weighted = CountingEncoder(encoder)
    KnowledgeService(demo_store, settings, weighted).search("能开专票吗")
    assert weighted.encoded == phrasings + 24 + 1  # every phrasing, the 24 answers, the query


def test_a_new_faq_is_found_within_seconds_without_retraining(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings
) -> None:
    counting = CountingEncoder(encoder)
    service = KnowledgeService(demo_store, settings, counting)
    assert service.search("你们支持数字人民币付款吗").decision != "answer"
    encoded_before = counting.encoded

    with demo_store.begin() as session:
        create_faq(
            session,
            faq_id="F100",
            question="支持数字人民币支付吗？",
            answer="支持，结算时选择“数字人民币”即可。",
            alt_questions=["能用数字人民币吗"],
        )
    started = time.monotonic()
    service.notify_changed()
    assert time.monotonic() - started < 5

    result = service.search("你们支持数字人民币付款吗")
    assert result.hits[0].faq_id == "F100"
    assert result.decision == "answer"
    assert counting.encoded - encoded_before == 2 + 1 + 1  # two phrasings, the answer, the query


def test_an_edited_answer_and_a_deleted_faq_are_seen_by_another_process(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings
) -> None:
    """Another process (the API) edits the store; this one notices by polling the revision."""
    service = KnowledgeService(demo_store, settings, encoder)
    with demo_store.begin() as session:
        update_faq(session, "F004", answer="全场包邮。")
        delete_faq(session, "F003")

    service.search("运费")  # the poll is due (interval 0): it refreshes in the background
    service.wait_for_refresh()

    assert service.search("运费怎么算").hits[0].answer == "全场包邮。"
    assert "F003" not in {hit.faq_id for hit in service.search("怎么开发票", top_k=10).hits}


def test_searches_during_an_update_never_fail(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings
) -> None:
    service = KnowledgeService(demo_store, settings, encoder)
    failures: list[BaseException] = []
    answers: list[str] = []
    stop = threading.Event()

    def search_continuously() -> None:
        while not stop.is_set():
            try:
                answers.append(service.search("运费怎么算").hits[0].faq_id)
            except BaseException as exc:  # noqa: BLE001 - any failure is what this test looks for
                failures.append(exc)

    searcher = threading.Thread(target=search_continuously)
    searcher.start()
    try:
        for round_number in range(5):
            with demo_store.begin() as session:
                create_faq(
                    session, question=f"第{round_number}个新问题：可以预约上门安装吗", answer="可以预约。"
                )
            service.notify_changed()
            with demo_store.begin() as session:
                update_faq(session, "F004", alt_questions=["包邮吗", f"邮费多少 {round_number}"])
            service.notify_changed()
    finally:
        stop.set()
        searcher.join()

    assert failures == []
    assert len(answers) > 5
    assert set(answers) == {"F004"}


def test_a_store_that_goes_down_leaves_search_working(
    demo_store: sessionmaker[Session],
    encoder: SentenceEncoder,
    settings: KnowledgeSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = KnowledgeService(demo_store, settings, encoder)

    def unavailable(session: Session) -> str:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr("knowledge.service.faq_store.faq_revision", unavailable)
    assert service.refresh(force=True) is None
    assert service.search("运费怎么算").hits[0].faq_id == "F004"


@pytest.mark.parametrize("query", ["", "    ", "😀😂🎉", "？？？"])
def test_nothing_to_search_is_an_honest_none(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings, query: str
) -> None:
    assert KnowledgeService(demo_store, settings, encoder).search(query).decision == "none"


def test_a_5000_character_question_is_answered_in_bounded_time(
    demo_store: sessionmaker[Session], encoder: SentenceEncoder, settings: KnowledgeSettings
) -> None:
    service = KnowledgeService(demo_store, settings, encoder)
    result = service.search("请问发票怎么开？" + "具体情况是这样的，" * 555)
    assert result.hits
