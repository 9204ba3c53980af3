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
"""

import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

import bm25s
import faiss
import numpy as np
import numpy.typing as npt

from knowledge.crowding import Crowding
from knowledge.encoder import Encoder, Vectors
from knowledge.homophones import HomophoneCorrector
from knowledge.text import MAX_QUERY_CHARS, lexical_tokens, normalise
from knowledge.types import FaqEntry

logger = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "hnsw"]

_BM25_K1: Final = 1.2
_BM25_B: Final = 0.75
# Rows fetched from each retriever before fusion; a FAQ with many phrasings may fill several.
_CANDIDATES: Final = 64
# Compact (rebuild without tombstones) once this share of rows is dead.
_MAX_TOMBSTONE_SHARE: Final = 0.25
_FORMAT_VERSION: Final = 2
# How much better a corrected reading's best FAQ must score than the typed question's. On the
# dev sets 0, 0.02 and 0.05 gave the same figures; a margin keeps a misreading that merely ties.
HOMOPHONE_MARGIN: Final = 0.02


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
class ScoredFaq:
    """One FAQ's fused score for a query, with the parts it was made of."""

    entry: FaqEntry
    score: float
    cosine: float
    lexical: float
    matched: str


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
        return len(self.row_faq) - self.dead_rows


@dataclass(frozen=True)
class SyncReport:
    added: int
    changed: int
    removed: int
    encoded: int

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def _dense_kind(config: IndexConfig, vectors: int) -> str:
    if config.kind != "auto":
        return config.kind
    return "flat" if vectors <= config.flat_max_vectors else "hnsw"


def _new_dense(kind: str, dimension: int, config: IndexConfig) -> faiss.Index:
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = config.hnsw_ef_search
        return index
    return faiss.IndexFlatIP(dimension)


def _lexical_index(
    row_tokens: Sequence[tuple[str, ...]], row_faq: Sequence[str | None]
) -> tuple[bm25s.BM25 | None, npt.NDArray[np.int64]]:
    # bm25s cannot add or remove documents, so the BM25 index is rebuilt from the rows' words,
    # which are kept: segmenting 100,000 questions again would take seconds, indexing them not.
    live = [row for row, faq in enumerate(row_faq) if faq is not None]
    corpus = [list(row_tokens[row]) or [""] for row in live]
    if not corpus:
        return None, np.zeros(0, dtype=np.int64)
    retriever = bm25s.BM25(k1=_BM25_K1, b=_BM25_B)
    retriever.index(corpus, show_progress=False)
    return retriever, np.asarray(live, dtype=np.int64)


def _homophones(row_tokens: Sequence[tuple[str, ...]], row_faq: Sequence[str | None]) -> HomophoneCorrector:
    return HomophoneCorrector.from_words(
        {word for tokens, faq in zip(row_tokens, row_faq, strict=True) if faq is not None for word in tokens}
    )


class FaqIndex:
    """The searchable FAQs of one process. `search` never blocks on `sync`."""

    def __init__(self, encoder: Encoder, config: IndexConfig | None = None) -> None:
        self.encoder = encoder
        self.config = config or IndexConfig()
        self._write_lock = threading.Lock()
        self._snapshot = self._empty()

    # -- reading ---------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def __len__(self) -> int:
        return len(self._snapshot.entries)

    def rank(self, query: str, top_k: int = 5) -> list[ScoredFaq]:
        """The best `top_k` FAQs for `query`, best first (empty for a query without a letter,
        digit or character, or an empty index)."""
        snapshot = self._snapshot
        text = normalise(query)[:MAX_QUERY_CHARS]
        # Only punctuation, symbols or emoji ("？？？", "😀😂") ask nothing: their vectors still
        # land near some FAQ, and a suggestion would be a guess.
        if not any(character.isalnum() for character in text) or not snapshot.entries or top_k <= 0:
            return []
        reading: tuple[str, Vectors] | None = None
        corrected = snapshot.homophones.correct(text)
        if corrected == text:
            vectors = self.encoder.encode([text])
        else:
            # One batch for both texts: cheaper than a second encoder call.
            vectors = self.encoder.encode([text, corrected])
            reading = (corrected, vectors[1])
        config = self.config
        return rank_question(
            snapshot,
            (text, vectors[0]),
            reading,
            top_k,
            config.dense_weight,
            config.answer_weight,
            config.crowding_weight,
        )

    # -- writing ---------------------------------------------------------------------------

    def sync(self, entries: Iterable[FaqEntry]) -> SyncReport:
        """Make the index hold exactly `entries`, encoding only phrasings it has not seen."""
        wanted = {entry.faq_id: entry for entry in entries}
        with self._write_lock:
            current = self._snapshot
            added = [fid for fid in wanted if fid not in current.entries]
            removed = [fid for fid in current.entries if fid not in wanted]
            changed = [
                fid for fid in wanted if fid in current.entries and current.entries[fid] != wanted[fid]
            ]
            if not (added or removed or changed):
                return SyncReport(0, 0, 0, 0)
            snapshot, encoded = self._apply(current, wanted, set(added) | set(changed) | set(removed))
            answers, answers_encoded = self._answer_vectors(current, wanted)
            self._snapshot = replace(snapshot, answers=answers)
            encoded += answers_encoded
        logger.info(
            "knowledge index updated: %d added, %d changed, %d removed, %d phrasings encoded",
            len(added),
            len(changed),
            len(removed),
            encoded,
        )
        return SyncReport(len(added), len(changed), len(removed), encoded)

    def _answer_vectors(
        self, current: Snapshot, wanted: Mapping[str, FaqEntry]
    ) -> tuple[dict[str, Vectors], int]:
        """Answer vectors for `wanted`, encoding only answers that are new or edited."""
        answers: dict[str, Vectors] = {}
        missing: list[str] = []
        if self.config.answer_weight <= 0:
            return answers, 0  # the score does not read answers, so they are not encoded
        for faq_id, entry in wanted.items():
            held = current.entries.get(faq_id)
            if faq_id in current.answers and held is not None and held.answer == entry.answer:
                answers[faq_id] = current.answers[faq_id]
            elif entry.answer.strip():
                missing.append(faq_id)
        if missing:
            vectors = self.encoder.encode([normalise(wanted[f].answer) for f in missing], passage=True)
            answers.update(zip(missing, vectors, strict=True))
        return answers, len(missing)

    def _apply(
        self, current: Snapshot, wanted: Mapping[str, FaqEntry], touched: set[str]
    ) -> tuple[Snapshot, int]:
        # Rows of touched FAQs die; their phrasings come back as new rows (re-using a vector
        # when the same text was encoded before, e.g. an edit that only changed the answer).
        row_faq = [None if faq in touched else faq for faq in current.row_faq]
        dead = sum(1 for faq in row_faq if faq is None)
        new_rows: list[tuple[str, str]] = [
            (fid, text) for fid in sorted(touched) if fid in wanted for text in wanted[fid].phrasings()
        ]
        reused = [current.row_of_text.get((normalise(text), "")) for _fid, text in new_rows]
        to_encode = [
            normalise(text) for (_fid, text), row in zip(new_rows, reused, strict=True) if row is None
        ]
        fresh = self.encoder.encode(to_encode)
        parts: list[Vectors] = []
        fresh_at = 0
        for row in reused:
            if row is None:
                parts.append(fresh[fresh_at : fresh_at + 1])
                fresh_at += 1
            else:
                parts.append(current.vectors[row : row + 1])
        added_vectors = np.vstack(parts) if parts else np.zeros((0, current.vectors.shape[1]), np.float32)

        total = len(row_faq) + len(new_rows)
        live_after = total - dead
        kind = _dense_kind(self.config, live_after)
        if dead > _MAX_TOMBSTONE_SHARE * max(total, 1) or kind != current.kind:
            return self._compacted(wanted, current, row_faq, new_rows, added_vectors), len(to_encode)

        dense = (
            faiss.clone_index(current.dense)
            if current.dense.ntotal
            else _new_dense(kind, self.encoder.dimension, self.config)
        )
        if added_vectors.shape[0]:
            dense.add(added_vectors)
        row_faq_all = tuple(row_faq) + tuple(fid for fid, _ in new_rows)
        row_text = current.row_text + tuple(text for _, text in new_rows)
        row_tokens = current.row_tokens + tuple(lexical_tokens(text) for _, text in new_rows)
        vectors = np.vstack([current.vectors, added_vectors])
        lexical, lexical_rows = _lexical_index(row_tokens, row_faq_all)
        homophones = _homophones(row_tokens, row_faq_all)
        row_of_text = dict(current.row_of_text)
        row_of_text.update(_text_rows(row_text[len(current.row_text) :], first_row=len(current.row_text)))
        return (
            Snapshot(
                entries=dict(wanted),
                row_faq=row_faq_all,
                row_text=row_text,
                vectors=vectors,
                dense=dense,
                lexical=lexical,
                lexical_rows=lexical_rows,
                dead_rows=dead,
                kind=kind,
                row_of_text=row_of_text,
                row_tokens=row_tokens,
                homophones=homophones,
                crowding=(
                    current.crowding.after_update(vectors, row_faq_all, dense)
                    if self.config.crowding_weight > 0
                    else current.crowding
                ),
            ),
            len(to_encode),
        )

    def _compacted(
        self,
        wanted: Mapping[str, FaqEntry],
        current: Snapshot,
        row_faq: Sequence[str | None],
        new_rows: Sequence[tuple[str, str]],
        added_vectors: Vectors,
    ) -> Snapshot:
        keep = [row for row, faq in enumerate(row_faq) if faq is not None]
        vectors = np.vstack([current.vectors[keep], added_vectors]) if keep else added_vectors
        faqs = tuple(row_faq[row] for row in keep) + tuple(fid for fid, _ in new_rows)
        texts = tuple(current.row_text[row] for row in keep) + tuple(text for _, text in new_rows)
        tokens = tuple(current.row_tokens[row] for row in keep) + tuple(
            lexical_tokens(t) for _, t in new_rows
        )
        return self._build(
            wanted, faqs, texts, np.ascontiguousarray(vectors, dtype=np.float32), row_tokens=tokens
        )

    def _build(
        self,
        wanted: Mapping[str, FaqEntry],
        row_faq: tuple[str | None, ...],
        row_text: tuple[str, ...],
        vectors: Vectors,
        saved_dense: faiss.Index | None = None,
        row_tokens: tuple[tuple[str, ...], ...] | None = None,
        saved_crowding: Crowding | None = None,
    ) -> Snapshot:
        kind = _dense_kind(self.config, len(row_faq))
        if row_tokens is None:
            row_tokens = tuple(lexical_tokens(text) for text in row_text)
        if saved_dense is not None and saved_dense.ntotal == len(vectors) and kind == "hnsw":
            # Rebuilding an HNSW graph of 100k vectors takes about 20 s; the saved one is the same.
            dense = saved_dense
            faiss.ParameterSpace().set_index_parameter(dense, "efSearch", self.config.hnsw_ef_search)
        else:
            dense = _new_dense(kind, self.encoder.dimension, self.config)
            if len(vectors):
                dense.add(vectors)
        lexical, lexical_rows = _lexical_index(row_tokens, row_faq)
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
            row_of_text=_text_rows(row_text),
            row_tokens=row_tokens,
            homophones=_homophones(row_tokens, row_faq),
            crowding=self._crowding(vectors, row_faq, dense, saved_crowding),
        )

    def _crowding(
        self,
        vectors: Vectors,
        row_faq: tuple[str | None, ...],
        dense: faiss.Index,
        saved: Crowding | None,
    ) -> Crowding:
        # Kept only where the score reads it, as the answer vectors are. Finding every row's
        # neighbours takes about 45 s at 100,000 rows, so a saved copy of the same rows is reused.
        if self.config.crowding_weight <= 0:
            return Crowding.empty()
        if (
            saved is not None
            and len(saved.penalty) == len(row_faq)
            and int(saved.neighbours.max(initial=-1)) < len(row_faq)
        ):
            return saved
        return Crowding.of_bank(vectors, row_faq, dense)

    def _empty(self) -> Snapshot:
        dimension = self.encoder.dimension
        return Snapshot(
            entries={},
            row_faq=(),
            row_text=(),
            vectors=np.zeros((0, dimension), dtype=np.float32),
            dense=_new_dense("flat", dimension, self.config),
            lexical=None,
            lexical_rows=np.zeros(0, dtype=np.int64),
        )

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the index to `directory` atomically (a reader sees the old or the new one)."""
        snapshot = self._snapshot
        directory.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}-") as tmp:
            work = Path(tmp) / "index"
            work.mkdir()
            live = [row for row, faq in enumerate(snapshot.row_faq) if faq is not None]
            np.save(work / "vectors.npy", snapshot.vectors[live])
            answer_ids = sorted(snapshot.answers)
            np.save(
                work / "answers.npy",
                np.vstack([snapshot.answers[f] for f in answer_ids])
                if answer_ids
                else np.zeros((0, self.encoder.dimension), dtype=np.float32),
            )
            (work / "answers.json").write_text(json.dumps(answer_ids), encoding="utf-8")
            rows = [{"faq_id": snapshot.row_faq[row], "text": snapshot.row_text[row]} for row in live]
            entries = [
                {
                    "faq_id": e.faq_id,
                    "question": e.question,
                    "answer": e.answer,
                    "alt_questions": list(e.alt_questions),
                    "category": e.category,
                }
                for e in snapshot.entries.values()
            ]
            manifest = {
                "format": _FORMAT_VERSION,
                "model": self.encoder.model_id,
                "dimension": self.encoder.dimension,
                "kind": _dense_kind(self.config, len(live)),
            }
            (work / "rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
            (work / "faqs.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
            if manifest["kind"] == "hnsw" and snapshot.dead_rows == 0 and snapshot.kind == "hnsw":
                faiss.write_index(snapshot.dense, str(work / "dense.faiss"))
            if len(snapshot.crowding.penalty) == len(snapshot.row_faq):
                neighbours, similarities = snapshot.crowding.lists_to_save(live)
                np.save(work / "crowding_neighbours.npy", neighbours)
                np.save(work / "crowding_similarities.npy", similarities)
            (work / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
            old = directory.with_name(f".{directory.name}.old")
            if directory.exists():
                os.replace(directory, old)
            os.replace(work, directory)
            if old.exists():
                _remove_tree(old)

    def load(self, directory: Path) -> bool:
        """Replace the index with the one saved in `directory`; False if absent or not ours."""
        if not (directory / "manifest.json").is_file():
            return False
        try:
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("format") != _FORMAT_VERSION or manifest.get("model") != self.encoder.model_id:
                return False
            rows = json.loads((directory / "rows.json").read_text(encoding="utf-8"))
            faqs = json.loads((directory / "faqs.json").read_text(encoding="utf-8"))
            vectors = np.load(directory / "vectors.npy").astype(np.float32, copy=False)
            answer_ids = json.loads((directory / "answers.json").read_text(encoding="utf-8"))
            answer_vectors = np.load(directory / "answers.npy").astype(np.float32, copy=False)
            dense_file = directory / "dense.faiss"
            dense = faiss.read_index(str(dense_file)) if dense_file.exists() else None
            crowding = _saved_crowding(directory) if self.config.crowding_weight > 0 else None
        except (OSError, ValueError, KeyError) as exc:
            logger.warning(
                "persisted knowledge index at %s not usable (%s); rebuilding", directory, type(exc).__name__
            )
            return False
        if len(rows) != len(vectors) or len(answer_ids) != len(answer_vectors):
            logger.warning("persisted knowledge index at %s is inconsistent; rebuilding", directory)
            return False
        entries = {
            f["faq_id"]: FaqEntry(
                faq_id=f["faq_id"],
                question=f["question"],
                answer=f["answer"],
                alt_questions=tuple(f["alt_questions"]),
                category=f.get("category"),
            )
            for f in faqs
        }
        answered = {faq_id for faq_id, entry in entries.items() if entry.answer.strip()}
        if self.config.answer_weight > 0 and not answered <= set(answer_ids):
            logger.info("persisted knowledge index at %s has no answer vectors; rebuilding", directory)
            return False
        row_faq = tuple(r["faq_id"] for r in rows)
        row_text = tuple(r["text"] for r in rows)
        with self._write_lock:
            snapshot = self._build(
                entries, row_faq, row_text, np.ascontiguousarray(vectors), dense, saved_crowding=crowding
            )
            self._snapshot = replace(snapshot, answers=dict(zip(answer_ids, answer_vectors, strict=True)))
        return True


def _text_rows(row_text: Sequence[str], first_row: int = 0) -> dict[tuple[str, str], int]:
    # Keyed by normalised text (the second part is room for a prompt variant); the last row of a
    # text wins, which is as good as any: equal texts have equal vectors, dead rows included.
    return {(normalise(text), ""): first_row + row for row, text in enumerate(row_text)}


def _saved_crowding(directory: Path) -> Crowding | None:
    neighbours_file = directory / "crowding_neighbours.npy"
    if not neighbours_file.exists():
        return None
    neighbours = np.load(neighbours_file).astype(np.int64, copy=False)
    similarities = np.load(directory / "crowding_similarities.npy").astype(np.float32, copy=False)
    if neighbours.shape != similarities.shape:
        return None
    return Crowding.of_saved(neighbours, similarities)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def rank_with_vector(
    snapshot: Snapshot,
    text: str,
    query_vector: Vectors,
    top_k: int,
    dense_weight: float,
    answer_weight: float = 0.0,
    crowding_weight: float = 0.0,
) -> list[ScoredFaq]:
    """Fuse the two retrievers for one (normalised) query whose vector is already known."""
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
        raise ValueError("the index keeps no crowding: build it with IndexConfig(crowding_weight > 0)")
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
