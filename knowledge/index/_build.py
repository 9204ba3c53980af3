"""Building a snapshot from rows whose vectors are known: the FAISS index, BM25, homophones, crowding."""

from collections.abc import Mapping, Sequence
from typing import Final

import bm25s
import faiss
import numpy as np
import numpy.typing as npt

from knowledge.crowding import Crowding
from knowledge.encoder import Vectors
from knowledge.homophones import HomophoneCorrector
from knowledge.index._snapshot import IndexConfig, Snapshot
from knowledge.text import lexical_tokens, normalise
from knowledge.types import FaqEntry

_BM25_K1: Final = 1.2
_BM25_B: Final = 0.75


def dense_kind(config: IndexConfig, vectors: int) -> str:
    """The FAISS index kind for this many vectors: the configured one, or by size under "auto"."""
    if config.kind != "auto":
        return config.kind
    return "flat" if vectors <= config.flat_max_vectors else "hnsw"


def new_dense(kind: str, dimension: int, config: IndexConfig) -> faiss.Index:
    """An empty inner-product index of that kind."""
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = config.hnsw_ef_search
        return index
    return faiss.IndexFlatIP(dimension)


def lexical_index(
    row_tokens: Sequence[tuple[str, ...]], row_faq: Sequence[str | None]
) -> tuple[bm25s.BM25 | None, npt.NDArray[np.int64]]:
    """The BM25 index of the live rows, and the row of each of its documents."""
    # bm25s cannot add or remove documents, so the BM25 index is rebuilt from the rows' words,
    # which are kept: segmenting 100,000 questions again would take seconds, indexing them not.
    live = [row for row, faq in enumerate(row_faq) if faq is not None]
    corpus = [list(row_tokens[row]) or [""] for row in live]
    if not corpus:
        return None, np.zeros(0, dtype=np.int64)
    retriever = bm25s.BM25(k1=_BM25_K1, b=_BM25_B)
    retriever.index(corpus, show_progress=False)
    return retriever, np.asarray(live, dtype=np.int64)


def homophones_of(row_tokens: Sequence[tuple[str, ...]], row_faq: Sequence[str | None]) -> HomophoneCorrector:
    """The sound-alike corrector over the words of the live rows."""
    return HomophoneCorrector.from_words(
        {word for tokens, faq in zip(row_tokens, row_faq, strict=True) if faq is not None for word in tokens}
    )


def text_rows(row_text: Sequence[str], first_row: int = 0) -> dict[tuple[str, str], int]:
    """The row of each (normalised) text, for re-using a vector instead of encoding it again."""
    # Keyed by normalised text (the second part is room for a prompt variant); the last row of a
    # text wins, which is as good as any: equal texts have equal vectors, dead rows included.
    return {(normalise(text), ""): first_row + row for row, text in enumerate(row_text)}


def _crowding(
    config: IndexConfig,
    vectors: Vectors,
    row_faq: tuple[str | None, ...],
    dense: faiss.Index,
    saved: Crowding | None,
) -> Crowding:
    # Kept only where the score reads it, as the answer vectors are. Finding every row's
    # neighbours takes about 45 s at 100,000 rows, so a saved copy of the same rows is reused.
    if config.crowding_weight <= 0:
        return Crowding.empty()
    if (
        saved is not None
        and len(saved.penalty) == len(row_faq)
        and int(saved.neighbours.max(initial=-1)) < len(row_faq)
    ):
        return saved
    return Crowding.of_bank(vectors, row_faq, dense)


def build_snapshot(
    config: IndexConfig,
    dimension: int,
    wanted: Mapping[str, FaqEntry],
    row_faq: tuple[str | None, ...],
    row_text: tuple[str, ...],
    vectors: Vectors,
    saved_dense: faiss.Index | None = None,
    row_tokens: tuple[tuple[str, ...], ...] | None = None,
    saved_crowding: Crowding | None = None,
) -> Snapshot:
    """A snapshot without tombstones of these rows (answer vectors are added by the caller).

    `saved_dense` and `saved_crowding` are re-used where they fit the rows, `row_tokens` where the
    words are known, so that a load or a compaction repeats no slow work.
    """
    kind = dense_kind(config, len(row_faq))
    if row_tokens is None:
        row_tokens = tuple(lexical_tokens(text) for text in row_text)
    if saved_dense is not None and saved_dense.ntotal == len(vectors) and kind == "hnsw":
        # Rebuilding an HNSW graph of 100k vectors takes about 20 s; the saved one is the same.
        dense = saved_dense
        faiss.ParameterSpace().set_index_parameter(dense, "efSearch", config.hnsw_ef_search)
    else:
        dense = new_dense(kind, dimension, config)
        if len(vectors):
            dense.add(vectors)
    lexical, lexical_rows = lexical_index(row_tokens, row_faq)
    return Snapshot(
        entries=dict(wanted),
        row_faq=row_faq,
        row_text=row_text,
        vectors=vectors,
        dense=dense,
        lexical=lexical,
        lexical_rows=lexical_rows,
        dead_rows=0,
        kind=kind,
        row_of_text=text_rows(row_text),
        row_tokens=row_tokens,
        homophones=homophones_of(row_tokens, row_faq),
        crowding=_crowding(config, vectors, row_faq, dense, saved_crowding),
    )


def empty_snapshot(config: IndexConfig, dimension: int) -> Snapshot:
    """The snapshot of an index without FAQs."""
    return Snapshot(
        entries={},
        row_faq=(),
        row_text=(),
        vectors=np.zeros((0, dimension), dtype=np.float32),
        dense=new_dense("flat", dimension, config),
        lexical=None,
        lexical_rows=np.zeros(0, dtype=np.int64),
    )
