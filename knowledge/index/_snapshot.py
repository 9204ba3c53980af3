"""What the index holds: its configuration and the immutable snapshot every search reads."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import bm25s
import faiss
import numpy as np
import numpy.typing as npt

from knowledge.crowding import Crowding
from knowledge.encoder import Vectors
from knowledge.homophones import HomophoneCorrector
from knowledge.types import FaqEntry

IndexKind = Literal["auto", "flat", "hnsw"]


@dataclass(frozen=True)
class IndexConfig:
    """How to index and fuse; `knowledge.service.index_config` fills it from the settings."""

    kind: IndexKind = "auto"
    flat_max_vectors: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    dense_weight: float = 1.0
    answer_weight: float = 0.0
    crowding_weight: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """An immutable state of the index; searches hold one for their whole duration."""

    entries: Mapping[str, FaqEntry]
    row_faq: tuple[str | None, ...]  # None marks a tombstoned row
    row_text: tuple[str, ...]
    vectors: Vectors
    dense: faiss.Index
    lexical: bm25s.BM25 | None
    lexical_rows: npt.NDArray[np.int64]  # BM25 document number -> row
    dead_rows: int = 0
    kind: str = "flat"
    row_of_text: Mapping[tuple[str, str], int] = field(default_factory=dict)
    row_tokens: tuple[tuple[str, ...], ...] = ()
    # faq_id -> unit vector of its answer (the `passage: ` prompt); absent for an empty answer.
    answers: Mapping[str, Vectors] = field(default_factory=dict)
    homophones: HomophoneCorrector = field(default_factory=HomophoneCorrector)
    crowding: Crowding = field(default_factory=Crowding.empty)

    @property
    def live_rows(self) -> int:
        """Rows not tombstoned."""
        return len(self.row_faq) - self.dead_rows
