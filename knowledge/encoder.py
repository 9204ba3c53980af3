"""The sentence encoder: a sentence-transformers model loaded from disk, never from a hub."""

import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from knowledge.settings import BASE_MODEL_DIR

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

# Both sides of a question-to-question match get the e5 prompt for symmetric tasks (the model
# card: "query: " for paraphrase retrieval); an answer is a passage that may answer the query.
QUESTION_PROMPT = "query"
ANSWER_PROMPT = "passage"


def _cpu_has_bf16() -> bool:
    """True when the CPU has bfloat16 arithmetic (Linux: /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _is_mean_pooled_and_normalised(model: Any) -> bool:
    """True for Transformer → mean Pooling over every token (prompt included) → Normalize."""
    modules = [type(module).__name__ for module in model]
    if modules != ["Transformer", "Pooling", "Normalize"]:
        return False
    pooling = model[1].get_config_dict()
    return bool(pooling.get("pooling_mode") == "mean" and pooling.get("include_prompt", True))


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
        self._tokenizer: Any = self._model.tokenizer
        self._transformer: Any = self._model[0].model
        self._max_tokens = int(self._model.max_seq_length or 512)
        # A customer's question is encoded while they wait. Where the CPU multiplies bfloat16 in
        # hardware (AMX, AVX-512 BF16), a bfloat16 copy of the weights does it in less time, and
        # its vectors agree with float32 at cosine 0.99997 (same hit@1 on the dev sets). Batches
        # (the FAQs themselves) stay float32.
        self._question_model: Any = self._transformer
        # The fast path for one question reproduces exactly this pipeline; any other model
        # (KNOWLEDGE_MODEL) goes through sentence-transformers' own encode.
        self._fast_single = _is_mean_pooled_and_normalised(self._model)
        if self._fast_single and _cpu_has_bf16():
            import copy

            import torch

            self._question_model = copy.deepcopy(self._transformer).to(torch.bfloat16)
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
        if len(texts) == 1 and not passage and self._fast_single:
            return self._encode_one_question(texts[0])
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

    def _encode_one_question(self, text: str) -> Vectors:
        """The same vector as `encode`, without the batching machinery: a customer's question is
        encoded while they wait, and sentence-transformers' per-call overhead is a fifth of it.

        Mean pooling over every token (the prompt's too, as the model's Pooling module does),
        then L2 normalisation.
        """
        import torch

        prompt = self._model.prompts.get(QUESTION_PROMPT) or ""
        with self._lock, torch.inference_mode():
            features = self._tokenizer(
                [prompt + text], return_tensors="pt", truncation=True, max_length=self._max_tokens
            )
            hidden = self._question_model(
                input_ids=features["input_ids"], attention_mask=features["attention_mask"]
            ).last_hidden_state
            vector = torch.nn.functional.normalize(hidden.float().mean(dim=1), dim=-1)
        return np.ascontiguousarray(vector.numpy(), dtype=np.float32)

    @property
    def model(self) -> object:
        """The underlying SentenceTransformer, for fine-tuning."""
        return self._model
