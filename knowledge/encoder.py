"""The sentence encoder: a sentence-transformers model loaded from disk, never from a hub."""

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from knowledge.settings import BASE_MODEL_DIR

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

# Both sides of a question-to-question match get the e5 prompt for symmetric tasks (the model
# card: "query: " for paraphrase retrieval); an answer is a passage that may answer the query.
QUESTION_PROMPT = "query"
ANSWER_PROMPT = "passage"


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
    """A sentence-transformers model on the CPU, with the e5 prompts."""

    def __init__(self, path: Path = BASE_MODEL_DIR, *, batch_size: int = 64) -> None:
        if not (path / "modules.json").is_file():
            raise EncoderUnavailable(
                f"未找到语义模型：{path}（请先运行 scripts/setup.sh 或设置 KNOWLEDGE_MODEL）"
            )
        # The machines are offline: nothing may try a hub, even for a config file.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._path = path
        self._batch_size = batch_size
        # torch releases the GIL while encoding; one call at a time keeps two threads (a search
        # and an index update) from each getting half the two cores.
        self._lock = threading.Lock()
        stamp = path / "built-from.json"
        self._model_id = f"{path.resolve()}@{stamp.stat().st_mtime_ns if stamp.exists() else 0}"
        logger.info("sentence encoder loaded from %s", path)

    @property
    def dimension(self) -> int:
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise EncoderUnavailable(f"{self._path}: the model does not say its embedding size")
        return int(dimension)

    @property
    def model_id(self) -> str:
        """Identifies the weights, so a persisted index built by another model is not reused."""
        return self._model_id

    def encode(self, texts: list[str], *, passage: bool = False) -> Vectors:
        """Unit vectors of questions (the `query: ` prompt) or, with `passage`, of answers."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                texts,
                prompt_name=ANSWER_PROMPT if passage else QUESTION_PROMPT,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def model(self) -> object:
        """The underlying SentenceTransformer, for fine-tuning."""
        return self._model
