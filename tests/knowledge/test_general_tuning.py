"""The customer-service encoder tuned at set-up from the project's own paraphrases."""

import json
from pathlib import Path

import numpy as np

from bench.faq_data import BENCH_DATA
from knowledge.encoder import SentenceEncoder
from knowledge.settings import (
    BASE_MODEL_DIR,
    SERVICE_MODEL_DIR,
    KnowledgeSettings,
)
from knowledge.text import normalise
from knowledge.training import general_tuning

TINY_CORPUS = {
    "source": "test",
    "sets": [
        {
            "name": "wallet",
            "faqs": [
                {"faq_id": 1, "question": "零钱包怎么开通"},
                {"faq_id": 2, "question": "零钱包为什么开通不了"},
                {"faq_id": 3, "question": "零钱包怎么关闭"},
                {"faq_id": 4, "question": "今天天气怎么样"},
            ],
            "queries": [
                {"query": "我想开个零钱包咋弄", "faq_id": 1},
                {"query": "零钱包一直开不了是咋回事", "faq_id": 2},
                {"query": "不想用零钱包了怎么关", "faq_id": 3},
                {"query": "外面下雨没", "faq_id": 4},
                {"query": "这个问题没有对应的FAQ", "faq_id": 99},
            ],
        }
    ],
}


def test_set_up_tuned_the_customer_service_model_from_the_current_corpus() -> None:
    assert general_tuning.is_built(), "run scripts/setup.sh: it tunes the customer-service encoder"


def test_the_product_encodes_with_the_tuned_model_unless_told_otherwise(tmp_path: Path) -> None:
    settings = KnowledgeSettings()
    if settings.tuned_model_accepted.is_file():  # a shop-tuned model (`crmbot faq tune`) comes first
        assert settings.model_path() == settings.tuned_model_dir
    else:
        assert settings.model_path() == SERVICE_MODEL_DIR
    assert KnowledgeSettings(model=tmp_path).model_path() == tmp_path


def test_the_corpus_pairs_each_paraphrase_with_a_faq_of_its_own_set(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(TINY_CORPUS, ensure_ascii=False), encoding="utf-8")
    (wallet,) = general_tuning.load_corpus(corpus)
    assert len(wallet.pairs) == 4  # the query of an unknown FAQ is left out
    assert wallet.questions[wallet.pairs[0][1]] == "零钱包怎么开通"


def test_a_hard_negative_is_the_closest_other_faq(base_encoder: SentenceEncoder, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(TINY_CORPUS, ensure_ascii=False), encoding="utf-8")
    (wallet,) = general_tuning.load_corpus(corpus)
    negatives = general_tuning.hard_negatives(base_encoder, [wallet])
    assert set(negatives) == {text for text, _ in wallet.pairs}
    for text, own in wallet.pairs:
        negative = negatives[text]
        assert negative != own and negative in wallet.questions
    # "不想用零钱包了怎么关" is closer to another 零钱包 FAQ than to the weather.
    assert negatives["不想用零钱包了怎么关"] != "wallet:4"


def test_tuning_writes_a_stamped_model_that_moves_paraphrases_towards_their_faq(
    base_encoder: SentenceEncoder, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(TINY_CORPUS, ensure_ascii=False), encoding="utf-8")
    target = tmp_path / "tuned"
    general_tuning.build(target, BASE_MODEL_DIR, corpus, epochs=3)
    assert general_tuning.is_built(target, BASE_MODEL_DIR, corpus)

    corpus.write_text(json.dumps({**TINY_CORPUS, "source": "edited"}, ensure_ascii=False), encoding="utf-8")
    assert not general_tuning.is_built(target, BASE_MODEL_DIR, corpus)  # a new corpus tunes again

    (wallet,) = general_tuning.load_corpus(corpus)
    keys = list(wallet.questions)
    queries = [text for text, _ in wallet.pairs]
    truth = np.array([keys.index(key) for _, key in wallet.pairs])

    def own_faq_margin(encoder: SentenceEncoder) -> float:
        similarity = encoder.encode(queries) @ encoder.encode([wallet.questions[k] for k in keys]).T
        own = similarity[np.arange(len(queries)), truth]
        similarity[np.arange(len(queries)), truth] = -1.0
        return float((own - similarity.max(axis=1)).mean())

    assert own_faq_margin(SentenceEncoder(target)) > own_faq_margin(base_encoder)


def test_a_batch_never_shows_a_paraphrase_its_own_faq_as_a_negative() -> None:
    from knowledge.training.tuning import _distinct_faqs

    batch = [("开通咋弄", "open"), ("怎么开", "open"), ("开不了", "broken"), ("关掉", "close")]
    negatives = {"开通咋弄": "broken", "怎么开": "broken", "开不了": "open", "关掉": "open"}
    kept = _distinct_faqs(batch, negatives)
    positives = [faq for _, faq in kept]
    assert len(positives) == len(set(positives))  # one paraphrase per FAQ
    for text, _faq in kept:
        assert negatives[text] not in positives  # no FAQ is both a target and a hard negative
    assert kept[0] == ("开通咋弄", "open")


def test_no_dev_or_held_out_question_is_in_the_training_corpus() -> None:
    # The held-out paraphrases back the in-domain figures and the dev queries choose the
    # settings; a training paraphrase equal to one of them would inflate both.
    corpus = general_tuning.load_corpus()
    trained = {text for part in corpus for text, _ in part.pairs}
    trained |= {question for part in corpus for question in part.questions.values()}
    checked = [Path(__file__).parent / "data" / "faq_heldout_paraphrases.json"]
    checked += sorted(BENCH_DATA.glob("*.json"))
    leaked = []
    for path in checked:
        data = json.loads(path.read_text(encoding="utf-8"))
        questions = [str(q["query"]) for q in data["queries"]] + [
            str(q) for q in data.get("out_of_domain", [])
        ]
        leaked += [f"{path.name}: {q}" for q in questions if normalise(q) in trained]
    assert len(checked) >= 8
    assert leaked == []
