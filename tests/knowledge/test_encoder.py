"""A single customer question is encoded on a fast path; it must give the batch's vector."""

import json
import shutil
from pathlib import Path

import numpy as np

from knowledge.encoder import SentenceEncoder
from knowledge.settings import BASE_MODEL_DIR

QUESTIONS = ["怎么申请退货？", "7天无理由退货ok吗", "😀", "SELECT * FROM faqs; --"]


def test_one_question_gets_the_same_vector_as_in_a_batch(encoder: SentenceEncoder) -> None:
    batch = encoder.encode(QUESTIONS)
    for row, question in enumerate(QUESTIONS):
        single = encoder.encode([question])
        assert single.shape == (1, encoder.dimension)
        assert float(single[0] @ batch[row]) >= 0.999, question


def test_a_model_with_another_pooling_is_not_forced_through_mean_pooling(tmp_path: Path) -> None:
    # KNOWLEDGE_MODEL may name any sentence-transformers directory; this one pools the first
    # token instead of the mean, so the fast path (mean pooling) would give other vectors.
    other = tmp_path / "cls-pooled"
    shutil.copytree(BASE_MODEL_DIR, other, ignore=shutil.ignore_patterns("model.safetensors"))
    (other / "model.safetensors").symlink_to(BASE_MODEL_DIR / "model.safetensors")
    pooling = other / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text(encoding="utf-8"))
    pooling.write_text(json.dumps({**config, "pooling_mode": "cls"}), encoding="utf-8")

    cls_encoder = SentenceEncoder(other)
    batch = cls_encoder.encode(QUESTIONS)
    singles = np.vstack([cls_encoder.encode([question]) for question in QUESTIONS])
    assert np.allclose((singles * batch).sum(axis=1), 1.0, atol=1e-3)
