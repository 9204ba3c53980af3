"""The sentence encoder: a sentence-transformers model loaded from disk, never from a hub."""

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from crm_store.settings import force_offline
from knowledge.errors import EncoderUnavailable as EncoderUnavailable  # also importable from here, as before
from knowledge.model_files import STAMP_FILE
from knowledge.onnx_graph import GRAPH_DIR, TransformerGraph, is_exported, load_graph
from knowledge.settings import BASE_MODEL_DIR

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

# Both sides of a question-to-question match get the e5 prompt for symmetric tasks (the model
# card: "query: " for paraphrase retrieval); an answer is a passage that may answer the query.
QUESTION_PROMPT = "query"
ANSWER_PROMPT = "passage"

# A call with at most this many texts is a search (one question, a few at most), which goes
# before the next batch of a larger call such as an import.
_SEARCH_TEXTS = 4


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _mean_pooling_config(path: Path) -> dict[str, Any] | None:
    """The Pooling module's configuration of a Transformer → mean Pooling over every token (prompt
    included) → Normalize model, read from its files; None for any other model."""
    try:
        modules = _read_json(path / "modules.json")
        kinds = [str(module["type"]).rsplit(".", 1)[-1] for module in modules]
        if kinds != ["Transformer", "Pooling", "Normalize"]:
            return None
        pooling: dict[str, Any] = _read_json(path / str(modules[1]["path"]) / "config.json")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pooling.get("pooling_mode") != "mean" or not pooling.get("include_prompt", True):
        return None
    return pooling


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


class Encoder(Protocol):
    """What the index needs from an encoder: unit vectors for a batch of questions or answers."""

    @property
    def dimension(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def encode(self, texts: list[str], *, passage: bool = False) -> Vectors: ...


class SentenceEncoder:
    """A sentence-transformers model on the CPU, with the e5 prompts.

    Where the model directory holds its transformer exported for ONNX Runtime from its current
    weights (knowledge.onnx_graph) and the model is mean-pooled and normalised, texts are encoded
    by that graph and the model's own tokenizer.json, and PyTorch is not even loaded: a customer's
    question takes about half the time PyTorch takes, and a process (`crmbot faq search`) starts
    without importing torch and sentence-transformers. Any other model (KNOWLEDGE_MODEL) is
    encoded by sentence-transformers itself.
    """

    def __init__(self, path: Path = BASE_MODEL_DIR, *, batch_size: int = 32) -> None:
        if not (path / "modules.json").is_file():
            raise EncoderUnavailable(
                f"未找到语义模型：{path}（请先运行 scripts/setup.sh 或设置 KNOWLEDGE_MODEL）"
            )
        # The machines are offline: nothing may try a hub, even for a config file.
        force_offline()
        self._path = path
        self._batch_size = batch_size
        self._turns = _Turns()
        self._loading = threading.Lock()
        self._sentence_transformer: Any = None
        # The graph holds the transformer only; the pooling and normalisation are done here, as
        # the model's own modules would, so only that pipeline may use it.
        pooling = _mean_pooling_config(path)
        self._graph = self._exported_graph(path) if pooling is not None else None
        if self._graph is not None and pooling is not None:
            settings = _read_json(path / "config_sentence_transformers.json")
            self._prompts: dict[str, str] = dict(settings.get("prompts") or {})
            self._dimension = int(pooling.get("embedding_dimension") or pooling["word_embedding_dimension"])
            self._tokenizer: Any = _graph_tokenizer(path)
        else:
            model = self.model
            self._prompts = dict(model.prompts)
            dimension = model.get_embedding_dimension()
            if dimension is None:
                raise EncoderUnavailable(f"{path}: the model does not say its embedding size")
            self._dimension = int(dimension)
        stamp = path / STAMP_FILE
        self._model_id = f"{path.resolve()}@{stamp.stat().st_mtime_ns if stamp.exists() else 0}"
        logger.info("sentence encoder loaded from %s, encoding with %s", path, self.engine)

    @property
    def dimension(self) -> int:
        return self._dimension

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
            prompt = self._prompts.get(prompt_name) or ""
            return self._encode_with_graph(self._graph, texts, prompt, search=search)
        model = self.model
        batches = []
        for start in range(0, len(texts), self._batch_size):
            with self._turns.turn(search=search):
                batches.append(
                    model.encode(
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
                encodings = self._tokenizer.encode_batch([prompt + texts[row] for row in rows])
                ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
                mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
                hidden = graph.hidden_states(ids, mask)
            pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return vectors

    @staticmethod
    def _exported_graph(path: Path) -> TransformerGraph | None:
        """The model's ONNX graph, if its export stamp names the weights the model's own stamp
        names: a graph left from other weights (a model copied over or retrained in place) would
        give that model's vectors."""
        if not (path / GRAPH_DIR).is_dir():
            logger.info("no ONNX graph in %s; encoding with PyTorch", path)
            return None
        if not is_exported(path):
            logger.warning(
                "ONNX graph in %s is out of date (other weights or exporter); encoding with PyTorch "
                "until `python -m knowledge.training.onnx_export` exports it again",
                path,
            )
            return None
        try:
            return load_graph(path)
        except Exception:
            logger.warning("ONNX graph in %s unreadable; encoding with PyTorch", path, exc_info=True)
            return None

    @property
    def model(self) -> Any:
        """The underlying SentenceTransformer (for fine-tuning), loaded on first use."""
        with self._loading:
            if self._sentence_transformer is None:
                from sentence_transformers import SentenceTransformer

                self._sentence_transformer = SentenceTransformer(
                    str(self._path), device="cpu", local_files_only=True
                )
            return self._sentence_transformer


def _graph_tokenizer(path: Path) -> Any:
    """The model's fast tokenizer from its tokenizer.json, padding to the batch's longest text and
    cutting at the model's length, as sentence-transformers' own call of it does."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    config = _read_json(path / "tokenizer_config.json")
    pad_token = str(config.get("pad_token") or "<pad>")
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise EncoderUnavailable(f"{path}: tokenizer.json has no padding token {pad_token}")
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    tokenizer.enable_truncation(max_length=int(config.get("model_max_length") or 512))
    return tokenizer
