"""The sentence encoder: a sentence-transformers model loaded from disk, never from a hub."""

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from knowledge.model_build import STAMP_FILE
from knowledge.onnx_graph import TransformerGraph, load_graph
from knowledge.settings import BASE_MODEL_DIR

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

# Both sides of a question-to-question match get the e5 prompt for symmetric tasks (the model
# card: "query: " for paraphrase retrieval); an answer is a passage that may answer the query.
QUESTION_PROMPT = "query"
ANSWER_PROMPT = "passage"

# A question that exercises the vocabulary: full-width signs, digits, Latin letters and emoji.
_GRAPH_PROBE = "我昨天买的iPhone 15（订单号SO12345）怎么还没发货？😟"
# float32 in both: what differs is only the order of the additions.
_GRAPH_AGREEMENT = 0.9999
# A call with at most this many texts is a search (one question, a few at most), which goes
# before the next batch of a larger call such as an import.
_SEARCH_TEXTS = 4


def _is_mean_pooled_and_normalised(model: Any) -> bool:
    """True for Transformer → mean Pooling over every token (prompt included) → Normalize."""
    modules = [type(module).__name__ for module in model]
    if modules != ["Transformer", "Pooling", "Normalize"]:
        return False
    pooling = model[1].get_config_dict()
    return bool(pooling.get("pooling_mode") == "mean" and pooling.get("include_prompt", True))


class _Turns:
    """One batch encodes at a time, and a waiting search takes the next turn.

    Both engines use both cores, so two batches at once would each get half of them. Taking turns
    by batch rather than by call, with searches first, bounds what a customer's question waits
    behind a staff import to one batch (at most 0.25 s measured) instead of the rest of the import
    (3.5 s for 600 FAQs on two cores when a call kept the encoder to itself).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._searches_waiting = 0

    @contextmanager
    def turn(self, *, search: bool) -> Iterator[None]:
        with self._changed:
            if search:
                self._searches_waiting += 1
            try:
                while self._busy or (not search and self._searches_waiting):
                    self._changed.wait()
            finally:
                if search:
                    self._searches_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()


class EncoderUnavailable(RuntimeError):
    """The encoder directory is missing or unreadable."""


class Encoder(Protocol):
    """What the index needs from an encoder: unit vectors for a batch of questions or answers."""

    @property
    def dimension(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def encode(self, texts: list[str], *, passage: bool = False) -> Vectors: ...


class SentenceEncoder:
    """A sentence-transformers model on the CPU, with the e5 prompts.

    Where the model directory holds its transformer exported for ONNX Runtime
    (knowledge.onnx_graph) and the model is mean-pooled and normalised, texts are encoded by that
    graph: a customer's question in about half the time PyTorch takes, a batch of FAQs in three
    quarters. Any other model (KNOWLEDGE_MODEL) is encoded by sentence-transformers itself.
    """

    def __init__(self, path: Path = BASE_MODEL_DIR, *, batch_size: int = 32) -> None:
        if not (path / "modules.json").is_file():
            raise EncoderUnavailable(
                f"未找到语义模型：{path}（请先运行 scripts/setup.sh 或设置 KNOWLEDGE_MODEL）"
            )
        # The machines are offline: nothing may try a hub, even for a config file.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._tokenizer: Any = self._model.tokenizer
        self._max_tokens = int(self._model.max_seq_length or 512)
        self._path = path
        self._batch_size = batch_size
        self._turns = _Turns()
        self._graph: TransformerGraph | None = None
        # The graph holds the transformer only; the pooling and normalisation are done here, as
        # the model's own modules would, so only that pipeline may use it.
        if _is_mean_pooled_and_normalised(self._model):
            self._graph = self._checked_graph(path)
        stamp = path / STAMP_FILE
        self._model_id = f"{path.resolve()}@{stamp.stat().st_mtime_ns if stamp.exists() else 0}"
        logger.info("sentence encoder loaded from %s, encoding with %s", path, self.engine)

    @property
    def dimension(self) -> int:
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise EncoderUnavailable(f"{self._path}: the model does not say its embedding size")
        return int(dimension)

    @property
    def engine(self) -> str:
        """What encodes: "onnxruntime" (the model's exported graph) or "pytorch"."""
        return "onnxruntime" if self._graph is not None else "pytorch"

    @property
    def model_id(self) -> str:
        """Identifies the weights, so a persisted index built by another model is not reused."""
        return self._model_id

    def encode(self, texts: list[str], *, passage: bool = False) -> Vectors:
        """Unit vectors of questions (the `query: ` prompt) or, with `passage`, of answers."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prompt_name = ANSWER_PROMPT if passage else QUESTION_PROMPT
        search = len(texts) <= _SEARCH_TEXTS
        if self._graph is not None:
            prompt = self._model.prompts.get(prompt_name) or ""
            return self._encode_with_graph(self._graph, texts, prompt, search=search)
        batches = []
        for start in range(0, len(texts), self._batch_size):
            with self._turns.turn(search=search):
                batches.append(
                    self._model.encode(
                        texts[start : start + self._batch_size],
                        prompt_name=prompt_name,
                        batch_size=self._batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
                )
        return np.ascontiguousarray(np.vstack(batches), dtype=np.float32)

    def _encode_with_graph(
        self, graph: TransformerGraph, texts: list[str], prompt: str, *, search: bool = True
    ) -> Vectors:
        """What the model's Transformer → mean Pooling → Normalize modules compute: the mean over
        every real token (the prompt's too), then L2 normalisation. Texts of similar length are
        batched together, as sentence-transformers does, so little of each batch is padding."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), self._batch_size):
            rows = order[start : start + self._batch_size]
            with self._turns.turn(search=search):
                features = self._tokenizer(
                    [prompt + texts[row] for row in rows],
                    return_tensors="np",
                    padding=True,
                    truncation=True,
                    max_length=self._max_tokens,
                )
                mask = features["attention_mask"].astype(np.int64)
                hidden = graph.hidden_states(features["input_ids"].astype(np.int64), mask)
            pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return vectors

    def _checked_graph(self, path: Path) -> TransformerGraph | None:
        """The model's ONNX graph, if it gives the model's own vector for a probe question: a
        graph left from other weights (a model copied or retrained in place) is not used."""
        try:
            graph = load_graph(path)
        except Exception:
            logger.warning("ONNX graph in %s unreadable; encoding with PyTorch", path, exc_info=True)
            return None
        if graph is None:
            logger.info("no ONNX graph in %s; encoding with PyTorch", path)
            return None
        prompt = self._model.prompts.get(QUESTION_PROMPT) or ""
        from_graph = self._encode_with_graph(graph, [_GRAPH_PROBE], prompt)[0]
        from_model = self._model.encode(
            [_GRAPH_PROBE], prompt_name=QUESTION_PROMPT, normalize_embeddings=True, convert_to_numpy=True
        )[0]
        cosine = float(from_graph @ from_model)
        if cosine < _GRAPH_AGREEMENT:
            logger.warning(
                "ONNX graph in %s disagrees with the model (cosine %.5f); encoding with PyTorch", path, cosine
            )
            return None
        return graph

    @property
    def model(self) -> object:
        """The underlying SentenceTransformer, for fine-tuning."""
        return self._model
