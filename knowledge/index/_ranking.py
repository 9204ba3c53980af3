"""Ranking: the two retrievers fused into one score per FAQ, for a question and its sound-alike reading."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import bm25s
import faiss
import numpy as np

from knowledge.encoder import Vectors
from knowledge.errors import CrowdingNotKept
from knowledge.index._snapshot import Snapshot
from knowledge.text import lexical_tokens
from knowledge.types import FaqEntry

# Rows fetched from each retriever before fusion; a FAQ with many phrasings may fill several.
_CANDIDATES: Final = 64
# How much better a corrected reading's best FAQ must score than the typed question's. On the
# dev sets 0, 0.02 and 0.05 gave the same figures; a margin keeps a misreading that merely ties.
HOMOPHONE_MARGIN: Final = 0.02


@dataclass(frozen=True)
class ScoredFaq:
    """One FAQ's fused score for a query, with the parts it was made of."""

    entry: FaqEntry
    score: float
    cosine: float
    lexical: float
    matched: str


def rank_with_vector(
    snapshot: Snapshot,
    text: str,
    query_vector: Vectors,
    top_k: int,
    dense_weight: float,
    answer_weight: float = 0.0,
    crowding_weight: float = 0.0,
) -> list[ScoredFaq]:
    """Fuse the two retrievers for one (normalised) query whose vector is already known.

    Raises:
        CrowdingNotKept: `crowding_weight` > 0 on a snapshot built without crowding.
    """
    candidates = min(len(snapshot.row_faq), _CANDIDATES + 4 * top_k)
    cosine_by_row: dict[int, float] = {}
    if candidates and snapshot.dense.ntotal:
        # One query is too little work to share: waking faiss's second OpenMP thread cost more
        # than it gave and made the 95th percentile depend on what else the two cores ran.
        # The setting is this thread's own; index builds elsewhere keep both cores.
        faiss.omp_set_num_threads(1)
        scores, rows = snapshot.dense.search(query_vector.reshape(1, -1), candidates)
        for score, row in zip(scores[0], rows[0], strict=True):
            if row >= 0 and snapshot.row_faq[row] is not None:
                cosine_by_row[int(row)] = float(score)

    lexical_by_row: dict[int, float] = {}
    tokens = list(lexical_tokens(text))
    if snapshot.lexical is not None and tokens:
        known = snapshot.lexical.get_tokens_ids(tokens)
        if known:
            bm25 = snapshot.lexical.get_scores(known)
            ceiling = _bm25_ceiling(snapshot.lexical, tokens)
            best = np.argpartition(-bm25, min(candidates, len(bm25)) - 1)[:candidates]
            for doc in best:
                if bm25[doc] > 0:
                    lexical_by_row[int(snapshot.lexical_rows[doc])] = float(bm25[doc]) / ceiling

    # Rows found by only one retriever get the other's score computed directly, so that every
    # candidate is judged on both.
    for row in lexical_by_row.keys() - cosine_by_row.keys():
        cosine_by_row[row] = float(snapshot.vectors[row] @ query_vector.reshape(-1))

    penalty = snapshot.crowding.penalty
    if crowding_weight > 0 and len(penalty) != len(snapshot.row_faq):
        raise CrowdingNotKept("the index keeps no crowding: build it with IndexConfig(crowding_weight > 0)")
    best_by_faq: dict[str, ScoredFaq] = {}
    for row, cosine in cosine_by_row.items():
        faq_id = snapshot.row_faq[row]
        if faq_id is None:
            continue
        lexical = lexical_by_row.get(row, 0.0)
        corrected = cosine - crowding_weight * float(penalty[row]) if crowding_weight > 0 else cosine
        score = dense_weight * corrected + (1.0 - dense_weight) * lexical
        held = best_by_faq.get(faq_id)
        if held is None or score > held.score:
            best_by_faq[faq_id] = ScoredFaq(
                snapshot.entries[faq_id], score, cosine, lexical, snapshot.row_text[row]
            )
    if answer_weight > 0:
        flat_query = query_vector.reshape(-1)
        for faq_id, held in best_by_faq.items():
            answer = snapshot.answers.get(faq_id)
            relevance = float(answer @ flat_query) if answer is not None else held.score
            best_by_faq[faq_id] = replace(
                held, score=(held.score + answer_weight * relevance) / (1 + answer_weight)
            )
    ranked = sorted(best_by_faq.values(), key=lambda s: (-s.score, s.entry.faq_id))
    return ranked[:top_k]


def rank_question(
    snapshot: Snapshot,
    typed: tuple[str, Vectors],
    reading: tuple[str, Vectors] | None,
    top_k: int,
    dense_weight: float,
    answer_weight: float = 0.0,
    crowding_weight: float = 0.0,
) -> list[ScoredFaq]:
    """Rank a (normalised) question, each text with its vector: as typed and, if it has one, as
    its sound-alike reading, whose ranking is kept only when its best FAQ scores at least
    `HOMOPHONE_MARGIN` higher."""
    weights = (dense_weight, answer_weight, crowding_weight)
    ranked = rank_with_vector(snapshot, *typed, top_k, *weights)
    if reading is None:
        return ranked
    corrected = rank_with_vector(snapshot, *reading, top_k, *weights)
    if corrected and (not ranked or corrected[0].score >= ranked[0].score + HOMOPHONE_MARGIN):
        return corrected
    return ranked


def _bm25_ceiling(retriever: bm25s.BM25, tokens: Sequence[str]) -> float:
    """A bound on what any document could score for `tokens`: Σ idf(t) over known words.

    bm25s stores idf·tf-saturation per (word, document); a word's idf is recovered from its
    document frequency with the same Lucene formula bm25s uses.
    """
    n_docs = retriever.scores["num_docs"]
    indptr = retriever.scores["indptr"]
    ceiling = 0.0
    for token_id in retriever.get_tokens_ids(list(tokens)):
        df = int(indptr[token_id + 1] - indptr[token_id])
        ceiling += math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    return ceiling if ceiling > 0 else 1.0
