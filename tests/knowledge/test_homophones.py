"""Sound-alike typos: read against the FAQs' own words, and kept only where they match better."""

import pytest

from knowledge.encoder import SentenceEncoder
from knowledge.homophones import HomophoneCorrector
from knowledge.index import FaqIndex, rank_with_vector
from knowledge.service import index_config
from knowledge.settings import KnowledgeSettings
from knowledge.text import lexical_tokens, normalise
from knowledge.types import FaqEntry


@pytest.fixture(scope="module")
def demo_words(demo_faq_entries: list[FaqEntry]) -> HomophoneCorrector:
    return HomophoneCorrector.from_words(
        word for entry in demo_faq_entries for text in entry.phrasings() for word in lexical_tokens(text)
    )


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("我想开个发漂", "我想开个发票"),
        ("积粉怎么用", "积分怎么用"),
        ("运废多少钱", "运费多少钱"),
        ("优惠圈怎么领", "优惠券怎么领"),
        ("wifi密马忘了", "wifi密码忘了"),
    ],
)
def test_a_sound_alike_typo_reads_as_the_faq_word(
    demo_words: HomophoneCorrector, typed: str, meant: str
) -> None:
    assert demo_words.correct(typed) == meant


@pytest.mark.parametrize("text", ["怎么申请退货", "要等几天", "", "😀😂", "order 123"])
def test_text_without_a_typo_is_left_as_typed(demo_words: HomophoneCorrector, text: str) -> None:
    assert demo_words.correct(text) == text


def test_a_character_inside_a_dictionary_word_is_not_a_typo() -> None:
    # 等级 sounds like 等几, but 几 belongs to 几天 here.
    assert HomophoneCorrector.from_words({"等级"}).correct("要等几天") == "要等几天"


def test_two_faq_words_with_one_sound_leave_the_typo_alone() -> None:
    assert HomophoneCorrector.from_words({"时间", "事件"}).correct("多长食间") == "多长食间"


def test_only_one_different_character_is_corrected() -> None:
    assert HomophoneCorrector.from_words({"鸡蛋"}).correct("记单词") == "记单词"


@pytest.fixture(scope="module")
def demo_index(encoder: SentenceEncoder, demo_faq_entries: list[FaqEntry]) -> FaqIndex:
    index = FaqIndex(encoder, index_config(KnowledgeSettings()))
    index.sync(demo_faq_entries)
    return index


def _typed_only(index: FaqIndex, query: str) -> str:
    """The best FAQ for the text exactly as typed, without its reading."""
    text = normalise(query)
    config = index.config
    ranked = rank_with_vector(
        index.snapshot, text, index.encoder.encode([text]), 3, config.dense_weight, config.answer_weight
    )
    return ranked[0].entry.faq_id


@pytest.mark.parametrize(
    ("query", "faq_id"),
    [("开发漂要多久", "F003"), ("我想开个发漂", "F003"), ("买东西送的积粉有效期多久", "F007")],
)
def test_a_question_with_a_typo_finds_the_faq_it_means(demo_index: FaqIndex, query: str, faq_id: str) -> None:
    assert _typed_only(demo_index, query) != faq_id, "the typo no longer misleads; pick another"
    assert demo_index.rank(query, top_k=3)[0].entry.faq_id == faq_id


def test_a_misreading_is_not_taken(encoder: SentenceEncoder) -> None:
    index = FaqIndex(encoder, index_config(KnowledgeSettings()))
    index.sync(
        [
            FaqEntry("ringtone", "来电铃声怎么换成音乐", "在设置-声音里选择来电铃声。"),
            FaqEntry("music", "放点音乐", "好的，为您播放音乐。"),
        ]
    )
    reading = index.snapshot.homophones.correct("来点音乐")
    assert reading == "来电音乐"
    assert index.rank(reading, top_k=2)[0].entry.faq_id == "ringtone"
    assert index.rank("来点音乐", top_k=2)[0].entry.faq_id == "music"


def test_words_of_an_added_faq_are_read_at_once_and_forgotten_with_it(encoder: SentenceEncoder) -> None:
    index = FaqIndex(encoder, index_config(KnowledgeSettings()))
    shipping = FaqEntry("ship", "多久发货", "付款后48小时内发货。")
    invoice = FaqEntry("invoice", "怎么开发票", "在订单详情里申请电子发票。")
    index.sync([shipping])
    assert index.snapshot.homophones.correct("发漂") == "发漂"
    index.sync([shipping, invoice])
    assert index.snapshot.homophones.correct("发漂") == "发票"
    index.sync([shipping])
    assert index.snapshot.homophones.correct("发漂") == "发漂"
