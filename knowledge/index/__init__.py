"""The hybrid FAQ index: dense vectors in FAISS, jieba words in BM25, one fused score.

Every phrasing of a FAQ (its question and each alternative) is one row. A query is scored
against rows by both retrievers and a FAQ takes the score of its best row, whose text is
reported as the matched question.

Fusion (a calibrated score mix rather than reciprocal ranks, because the decision to answer
needs an absolute number, not only an order):

    phrasing = w · (cosine − c · crowd) + (1 − w) · bm25 / bm25_max(query)
    score    = (best phrasing of the FAQ + a · cosine(query, answer)) / (1 + a)

The second line is query–answer relevance, a classic of FAQ retrieval: a question worded
unlike every phrasing ("西藏收货要多加钱吗") may still be close to the answer ("偏远地区（新疆、
西藏等）每单加收15元"). A FAQ without an answer text counts its best phrasing twice instead.

`cosine` is the inner product of unit vectors; `bm25_max(query)` bounds what any row could
score for this query, Σ idf(t) over the query's words (bm25s's Lucene variant saturates each
word's term frequency below 1), so both terms lie in [0, 1] and mean the same thing for every
query and every FAQ set. `crowd` is how much closer than is usual in this bank the phrasing sits
to other FAQs' phrasings: the hubness correction of knowledge.crowding, off when c = 0.

A question may hold a sound-alike typo ("积粉能当钱花不"); its reading in the knowledge base's
own words (knowledge.homophones) is ranked too, and replaces the typed text's ranking only when
its best FAQ scores at least `HOMOPHONE_MARGIN` higher.

Updates are copy-on-write: a new `Snapshot` is built beside the one being searched and swapped
in with one assignment, so a search during an update sees either the old or the new FAQs,
never half of each and never an error. Only changed phrasings are encoded; removed rows are
tombstoned until the next compaction.

One module per job, all re-exported here (import from `knowledge.index`):

| module           | what                                                                    |
|------------------|-------------------------------------------------------------------------|
| `_snapshot`      | `IndexConfig` and the immutable `Snapshot`                              |
| `_build`         | a snapshot from rows with known vectors: FAISS, BM25, homophones, crowd |
| `_sync`          | incremental update: tombstones, re-used vectors, compaction             |
| `_persistence`   | save to and load from `var/knowledge/`                                  |
| `_ranking`       | `rank_with_vector`, `rank_question`: the fusion above                   |
| `_faq_index`     | `FaqIndex`, which holds the current snapshot and ties the others        |
"""

from knowledge.index._faq_index import FaqIndex
from knowledge.index._ranking import HOMOPHONE_MARGIN, ScoredFaq, rank_question, rank_with_vector
from knowledge.index._snapshot import IndexConfig, IndexKind, Snapshot
from knowledge.index._sync import SyncReport

__all__ = [
    "HOMOPHONE_MARGIN",
    "FaqIndex",
    "IndexConfig",
    "IndexKind",
    "ScoredFaq",
    "Snapshot",
    "SyncReport",
    "rank_question",
    "rank_with_vector",
]
