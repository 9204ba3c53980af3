"""The encoder on ONNX Runtime gives sentence-transformers' vectors, alone or in batches."""

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge.encoder import SentenceEncoder
from knowledge.onnx_graph import GRAPH_DIR
from knowledge.settings import BASE_MODEL_DIR, SERVICE_MODEL_DIR

QUESTIONS = [
    "怎么申请退货？",
    "7天无理由退货ok吗",
    "😀",
    "SELECT * FROM faqs; --",
    "我上周在你们APP买的蓝牙耳机左耳没声音，换了新的还是一样，能退款吗？" * 3,
]


def test_onnx_runtime_gives_the_vectors_of_the_sentence_transformers_model(encoder: SentenceEncoder) -> None:
    # The product's encoder runs the transformer exported at set-up on ONNX Runtime; what it
    # returns must be what the sentence-transformers model itself computes, alone or in a batch
    # (padded to its longest text), for questions and for answers.
    assert encoder.engine == "onnxruntime"
    model: Any = encoder.model
    for passage in (False, True):
        expected = model.encode(
            QUESTIONS, prompt_name="passage" if passage else "query", normalize_embeddings=True
        )
        batch = encoder.encode(QUESTIONS, passage=passage)
        assert batch.shape == (len(QUESTIONS), encoder.dimension)
        assert np.allclose((batch * expected).sum(axis=1), 1.0, atol=1e-4)
        for row, question in enumerate(QUESTIONS):
            single = encoder.encode([question], passage=passage)
            assert float(single[0] @ expected[row]) >= 0.9999, question


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


def test_a_graph_exported_from_other_weights_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The base model's files with the tuned model's graph beside them, as a model copied over
    # or retrained in place would leave it: the graph would give the other model's vectors.
    other = tmp_path / "stale-graph"
    shutil.copytree(BASE_MODEL_DIR, other, ignore=shutil.ignore_patterns("model.safetensors", GRAPH_DIR))
    (other / "model.safetensors").symlink_to(BASE_MODEL_DIR / "model.safetensors")
    (other / GRAPH_DIR).symlink_to(SERVICE_MODEL_DIR / GRAPH_DIR)

    stale = SentenceEncoder(other)
    assert stale.engine == "pytorch"
    assert "is out of date" in caplog.text  # the operator is told why
    batch = stale.encode(QUESTIONS)
    singles = np.vstack([stale.encode([question]) for question in QUESTIONS])
    assert np.allclose((singles * batch).sum(axis=1), 1.0, atol=1e-3)


def test_a_question_asked_during_an_import_does_not_wait_for_all_of_it(encoder: SentenceEncoder) -> None:
    # Staff import 640 FAQs (about four seconds of encoding on two cores) while a customer asks
    # a question: the question takes the next turn between two of the import's batches.
    faqs = [f"第{i}条：买的东西怎么还没发货，订单号SO{i:05d}，麻烦帮我查一下物流" for i in range(640)]
    imported: dict[str, np.ndarray] = {}
    importing = threading.Thread(target=lambda: imported.update(vectors=encoder.encode(faqs, passage=True)))
    importing.start()
    time.sleep(0.3)  # the import's first batches are running
    question = encoder.encode(["运费怎么算"])
    answered_while_importing = importing.is_alive()
    importing.join()

    assert answered_while_importing
    assert float(question[0] @ encoder.encode(["运费怎么算"])[0]) >= 0.9999
    alone = encoder.encode(faqs[:8], passage=True)
    assert np.allclose((imported["vectors"][:8] * alone).sum(axis=1), 1.0, atol=1e-4)


def test_searching_with_the_exported_graph_does_not_load_pytorch() -> None:
    # `crmbot faq search` is a new process per question: importing torch and sentence-transformers
    # and loading the model twice (PyTorch and ONNX Runtime) took most of its 5–10 seconds.
    script = (
        "import sys\n"
        "from knowledge.encoder import SentenceEncoder\n"
        "from knowledge.settings import SERVICE_MODEL_DIR\n"
        "encoder = SentenceEncoder(SERVICE_MODEL_DIR)\n"
        "assert encoder.encode(['运费怎么算']).shape == (1, encoder.dimension)\n"
        "print(encoder.engine, sorted({'torch', 'sentence_transformers'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "onnxruntime []"
