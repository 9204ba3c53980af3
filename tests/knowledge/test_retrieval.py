"""Retrieval on the demo FAQs, measured on paraphrases written for this test and never tuned on."""

import pytest
from knowledge_support import held_out_paraphrases

from knowledge.decision import decide
from knowledge.encoder import SentenceEncoder
from knowledge.index import FaqIndex
from knowledge.service import index_config, thresholds
from knowledge.settings import KnowledgeSettings
from knowledge.types import FaqEntry

HELD_OUT = held_out_paraphrases()


@pytest.fixture(scope="module")
def demo_index(encoder: SentenceEncoder, demo_faq_entries: list[FaqEntry]) -> FaqIndex:
    index = FaqIndex(encoder, index_config(KnowledgeSettings()))
    index.sync(demo_faq_entries)
    return index


def test_held_out_paraphrases_find_their_faq_first(demo_index: FaqIndex) -> None:
    misses = []
    for item in HELD_OUT["queries"]:
        ranked = demo_index.rank(item["query"], top_k=5)
        if ranked[0].entry.faq_id != item["faq_id"]:
            misses.append((item["query"], item["faq_id"], ranked[0].entry.faq_id))
    hit1 = 1 - len(misses) / len(HELD_OUT["queries"])
    assert len(HELD_OUT["queries"]) >= 100
    assert hit1 >= 0.9, misses


def test_held_out_paraphrases_have_their_faq_in_the_top_three(demo_index: FaqIndex) -> None:
    outside = [
        item["query"]
        for item in HELD_OUT["queries"]
        if item["faq_id"] not in {s.entry.faq_id for s in demo_index.rank(item["query"], top_k=3)}
    ]
    assert len(outside) <= 0.05 * len(HELD_OUT["queries"]), outside


def test_questions_no_faq_answers_are_rarely_answered(demo_index: FaqIndex) -> None:
    limits = thresholds(KnowledgeSettings())
    answered = [
        q for q in HELD_OUT["out_of_domain"] if decide(demo_index.rank(q, top_k=3), limits) == "answer"
    ]
    assert len(answered) <= 0.1 * len(HELD_OUT["out_of_domain"]), answered


def test_a_confident_answer_is_almost_always_the_right_faq(demo_index: FaqIndex) -> None:
    limits = thresholds(KnowledgeSettings())
    answered = right = 0
    for item in HELD_OUT["queries"]:
        ranked = demo_index.rank(item["query"], top_k=3)
        if decide(ranked, limits) == "answer":
            answered += 1
            right += ranked[0].entry.faq_id == item["faq_id"]
    assert answered >= 0.4 * len(HELD_OUT["queries"]), "too few questions answered directly"
    assert right / answered >= 0.95


def test_the_matched_question_is_the_phrasing_closest_to_the_query(demo_index: FaqIndex) -> None:
    ranked = demo_index.rank("包邮吗", top_k=3)
    best = ranked[0]
    assert best.entry.faq_id == "F004"
    assert best.matched == "包邮吗"
    assert best.cosine > 0.99
    assert decide(ranked, thresholds(KnowledgeSettings())) == "answer"


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_a_blank_query_finds_nothing(demo_index: FaqIndex, query: str) -> None:
    assert demo_index.rank(query) == []


def test_a_5000_character_query_is_searched_without_error(demo_index: FaqIndex) -> None:
    ranked = demo_index.rank("我想退货" + "啊" * 4996, top_k=3)
    assert len(ranked) == 3


def test_emoji_only_is_not_answered(demo_index: FaqIndex) -> None:
    ranked = demo_index.rank("😀😂🎉👍", top_k=3)
    assert decide(ranked, thresholds(KnowledgeSettings())) != "answer"


def test_sql_and_markup_are_just_text(demo_index: FaqIndex) -> None:
    ranked = demo_index.rank("'; DROP TABLE faqs; -- <script>alert(1)</script>", top_k=3)
    assert decide(ranked, thresholds(KnowledgeSettings())) != "answer"
