"""How crowded each FAQ phrasing's neighbourhood is: the hubness correction of the dense score.

Nearest-neighbour search in high dimensions has hubs: a few vectors sit close to many others and
come out first for questions that belong elsewhere. Banks of short customer sentences (FAQs
made from the unanswered queue, public question-matching sets) gain most from correcting for
them (bench/results/faq_calibration.md). CSLS (Conneau et al., 2018, "Word translation without
parallel data") corrects a cosine by the target's neighbourhood; here, for a phrasing p of a FAQ:

    crowd(p)  = mean cosine of p to its k nearest phrasings of *other* FAQs
    corrected = cosine − c · (crowd(p) − median crowd of the bank)

A FAQ's own alternatives give the same answer, so they are no crowd. Subtracting the bank's
median keeps scores on the cosine scale the decision thresholds are calibrated on, whatever the
size of the bank; the order is CSLS's. k = 5: over k in {1, 3, 5, 10, 20} on our dev sets and
their customer-worded variants the figures were flat from 3 to 10 (an exploration, not kept);
the weight c is `KNOWLEDGE_CROWDING_WEIGHT`, calibrated by bench.faq_calibrate.

Neighbour lists are kept per row so that an update recomputes only the rows it touches: new rows,
rows that lost a neighbour to a removal, and rows a new phrasing now crowds.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import faiss
import numpy as np
import numpy.typing as npt

from knowledge.encoder import Vectors

# Nearest phrasings of other FAQs that make a phrasing's crowd.
CROWD_NEIGHBOURS: Final = 5
# Extra rows fetched per search to make up for the row itself and its FAQ's other phrasings.
_OWN_PHRASINGS_ALLOWANCE: Final = 32
# Rows a new phrasing might crowd: those among its nearest this many.
_REVERSE_CANDIDATES: Final = 64


@dataclass(frozen=True)
class Crowding:
    """Per row: its nearest phrasings of other FAQs and the correction they make."""

    neighbours: npt.NDArray[np.int64]  # (rows, k), nearest first; -1 where there are fewer
    similarities: npt.NDArray[np.float32]  # (rows, k); -inf where there is no neighbour
    penalty: npt.NDArray[np.float32]  # (rows,) crowd − the bank's median crowd; 0 for dead rows

    @classmethod
    def empty(cls) -> "Crowding":
        return cls(
            np.full((0, CROWD_NEIGHBOURS), -1, dtype=np.int64),
            np.full((0, CROWD_NEIGHBOURS), -np.inf, dtype=np.float32),
            np.zeros(0, dtype=np.float32),
        )

    @classmethod
    def of_bank(cls, vectors: Vectors, row_faq: Sequence[str | None], dense: faiss.Index) -> "Crowding":
        """Every live row's neighbours, found in `dense` (which holds `vectors`, row for row)."""
        fresh = cls.empty()
        return fresh.updated(vectors, row_faq, dense, np.flatnonzero(_live(row_faq)))

    @classmethod
    def of_saved(cls, neighbours: npt.NDArray[np.int64], similarities: npt.NDArray[np.float32]) -> "Crowding":
        """The crowding of a saved index, whose rows are all live (`lists_to_save` wrote them)."""
        return cls(neighbours, similarities, _penalty(similarities, np.ones(len(neighbours), dtype=bool)))

    def lists_to_save(self, rows: list[int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The neighbour lists of `rows` (every live row), renumbered as those rows are when saved."""
        renumbered = np.full(len(self.penalty), -1, dtype=np.int64)
        renumbered[rows] = np.arange(len(rows))
        listed = self.neighbours[rows]
        return np.where(listed >= 0, renumbered[np.maximum(listed, 0)], -1), self.similarities[rows]

    def after_update(self, vectors: Vectors, row_faq: Sequence[str | None], dense: faiss.Index) -> "Crowding":
        """The crowding after rows were tombstoned and new rows appended (at the end)."""
        old = len(self.penalty)
        live = _live(row_faq)
        new_rows = np.flatnonzero(live[old:]) + old
        # Rows that lost a neighbour: a tombstoned row, or a row of a FAQ that was edited.
        listed = self.neighbours >= 0
        lost = (listed & ~live[np.maximum(self.neighbours, 0)]).any(axis=1) & live[:old]
        affected = [new_rows, np.flatnonzero(lost)]
        # Rows a new phrasing now crowds: it is closer to them than their k-th neighbour. They are
        # looked for among its 64 nearest rows only, so a far row it would just enter the list of
        # can be missed; after an edit at 100,000 rows every list still equalled a fresh build's.
        if len(new_rows) and old:
            codes = _faq_codes(row_faq)
            scores, rows = _search(dense, vectors[new_rows], min(_REVERSE_CANDIDATES, len(row_faq)), live)
            known = rows >= 0
            near = np.where(known, rows, 0)
            crowded = (
                known
                & (near < old)
                & (codes[near] != codes[new_rows][:, None])
                & (scores > self.similarities[np.minimum(near, old - 1), -1])
            )
            affected.append(near[crowded])
        return self.updated(vectors, row_faq, dense, np.unique(np.concatenate(affected)))

    def updated(
        self,
        vectors: Vectors,
        row_faq: Sequence[str | None],
        dense: faiss.Index,
        rows: npt.NDArray[np.int64],
    ) -> "Crowding":
        """A copy grown to `row_faq`'s length with `rows`' neighbour lists recomputed."""
        total, k = len(row_faq), self.neighbours.shape[1]
        live = _live(row_faq)
        neighbours = np.full((total, k), -1, dtype=np.int64)
        similarities = np.full((total, k), -np.inf, dtype=np.float32)
        neighbours[: len(self.neighbours)] = self.neighbours
        similarities[: len(self.similarities)] = self.similarities
        if len(rows):
            codes = _faq_codes(row_faq)
            scores, found = _search(dense, vectors[rows], min(total, k + 1 + _OWN_PHRASINGS_ALLOWANCE), live)
            other = (found >= 0) & (codes[np.maximum(found, 0)] != codes[rows][:, None])
            # The first k other-FAQ rows of each (search results come nearest first).
            first = np.argsort(~other, axis=1, kind="stable")[:, :k]
            kept = np.take_along_axis(other, first, axis=1)
            neighbours[rows] = np.where(kept, np.take_along_axis(found, first, axis=1), -1)
            similarities[rows] = np.where(kept, np.take_along_axis(scores, first, axis=1), -np.inf)
        neighbours[~live] = -1
        similarities[~live] = -np.inf
        return Crowding(neighbours, similarities, _penalty(similarities, live))


def _faq_codes(row_faq: Sequence[str | None]) -> npt.NDArray[np.int64]:
    """One integer per FAQ (-1 for a tombstoned row), so rows compare by FAQ in NumPy."""
    numbers: dict[str, int] = {}
    return np.fromiter(
        (-1 if faq is None else numbers.setdefault(faq, len(numbers)) for faq in row_faq),
        dtype=np.int64,
        count=len(row_faq),
    )


def _live(row_faq: Sequence[str | None]) -> npt.NDArray[np.bool_]:
    return np.fromiter((faq is not None for faq in row_faq), dtype=bool, count=len(row_faq))


def _search(
    dense: faiss.Index, queries: Vectors, k: int, live: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """`k` nearest live rows of each query (tombstoned rows stay in the FAISS index)."""
    # Only a selector's bitmap keeps tombstoned rows out, but it also turns exact search from
    # matrix products into a row-by-row scan, four times slower: a full build has no dead rows.
    bitmap = np.packbits(live, bitorder="little")
    selector = None if live.all() else faiss.IDSelectorBitmap(len(live), faiss.swig_ptr(bitmap))
    params: faiss.SearchParameters | None = None
    if isinstance(dense, faiss.IndexHNSW):
        hnsw_params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # absent from faiss's stubs
        hnsw_params.efSearch = max(dense.hnsw.efSearch, k)
        params = hnsw_params
    elif selector is not None:
        params = faiss.SearchParameters()
    if params is not None and selector is not None:
        params.sel = selector
    scores, rows = dense.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
    return scores, rows


def _penalty(similarities: npt.NDArray[np.float32], live: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    counted = np.isfinite(similarities)
    known = counted.any(axis=1) & live
    penalty = np.zeros(len(similarities), dtype=np.float32)
    if not known.any():
        return penalty
    crowd = np.where(counted, similarities, 0.0).sum(axis=1)[known] / counted.sum(axis=1)[known]
    penalty[known] = crowd - np.median(crowd)
    return penalty
