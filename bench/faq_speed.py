"""FAQ speed: encoder throughput, index build and search latency at 1k, 10k and 100k FAQs.

    .venv-app/bin/python -m bench.faq_speed

Measures, with the product's settings (knowledge.settings: encoder, index kind, weights):

- encoder throughput, questions per second at batch sizes 1, 16 and 64, over 512 seeded
  synthetic customer questions (bench.synthetic_questions);
- for seeded synthetic corpora of 1,000, 10,000 and 100,000 FAQs (one question and one answer
  each): the index kind the settings pick, the time to encode the questions and the answers
  (the index encodes both), the time `FaqIndex.sync` takes to build the index from those
  vectors, and the latency of `FaqIndex.rank(query, top_k=5)` over 400 customer questions,
  each encoded for real inside the timed call (the bar: p95 ≤ 20 ms at 100k FAQs on 2 cores),
  split into query encoding and the rest;
- the time of an incremental update: `sync` of the whole FAQ list with one question edited.

To keep the run short, only the first 10,000 questions and answers are encoded; FAQs
10,001–100,000 get the vectors of FAQ (i mod 10,000) plus seeded Gaussian noise (σ = 0.01 per
dimension, cosine ≈ 0.98 to the source), renormalised. Their texts are distinct real ones, so
BM25 indexes and searches real words; a flat index's search time does not depend on the
vectors' values. The 100k corpus is also timed with the other index kind forced, for comparison.

Takes about 5 minutes on 2 idle cores, half of it encoding the 10,000 questions and answers.
Other processes on the machine slow the encoder down many times over: the last column says how
much CPU they took while each row was timed.
"""

import gc
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import track
from rich.table import Table

from bench.cpu_load import OtherLoad
from bench.results_table import report
from bench.synthetic_questions import customer_queries, faq_answers, faq_questions
from knowledge.encoder import SentenceEncoder, Vectors
from knowledge.index import FaqIndex, IndexConfig, IndexKind
from knowledge.service import index_config
from knowledge.settings import get_knowledge_settings
from knowledge.text import lexical_tokens, normalise
from knowledge.types import FaqEntry

SIZES = (1_000, 10_000, 100_000)
REAL_VECTORS = 10_000
NOISE_SIGMA = 0.01
NOISE_SEED = 4
ENCODE_CHUNK = 1_000
THROUGHPUT_TEXTS = 512
BATCH_SIZES = (1, 16, 64)
SEARCHES = 400
WARM_UP = 20
TOP_K = 5
P95_BUDGET_MS = 20.0

_stderr = Console(stderr=True)
T = TypeVar("T")


def main() -> None:
    started = time.monotonic()
    whole_run = OtherLoad()
    settings = get_knowledge_settings()
    model = settings.model_path()
    real = SentenceEncoder(model)
    config = index_config(settings)

    samples = customer_queries(THROUGHPUT_TEXTS, seed=512)
    throughput = _throughput(real, [normalise(q) for q in samples])

    questions = faq_questions(max(SIZES))
    answers = faq_answers(max(SIZES))
    question_texts = [normalise(q) for q in questions]
    answer_texts = [normalise(a) for a in answers]
    question_vectors, question_seconds = _corpus_vectors(real, question_texts, passage=False)
    answer_vectors, answer_seconds = _corpus_vectors(real, answer_texts, passage=True)
    queries = customer_queries(WARM_UP + SEARCHES)
    full_encode = (question_seconds[REAL_VECTORS] + answer_seconds[REAL_VECTORS]) * max(SIZES) / REAL_VECTORS

    encoder = _CorpusEncoder(real)
    runs: list[tuple[str, int, IndexConfig]] = [(f"{size:,}", size, config) for size in SIZES]
    largest = max(SIZES)
    other: IndexKind = "hnsw" if _dense_kind(config, largest) == "flat" else "flat"
    runs.append((f"{largest:,} ({other} forced)", largest, replace(config, kind=other)))
    rows: list[list[object]] = []
    for label, size, run_config in runs:
        entries = [
            FaqEntry(faq_id=f"S{i:06d}", question=questions[i], answer=answers[i]) for i in range(size)
        ]
        encoder.serve(
            question_texts[:size], question_vectors[:size], answer_texts[:size], answer_vectors[:size]
        )
        index = FaqIndex(encoder, run_config)
        _stderr.print(f"building the index of {label} FAQs …")
        begun = time.perf_counter()
        index.sync(entries)
        build = time.perf_counter() - begun
        encoder.clear()

        during_search = OtherLoad()
        totals, encodes = _search(index, encoder, queries, label)
        others = during_search.describe()
        edit_seconds = _edit(index, entries)
        rest = totals - encodes
        p50, p95, p99 = np.percentile(totals, [50, 95, 99])
        encode = "—"
        if size in question_seconds and size in answer_seconds:
            encode = f"{question_seconds[size]:.1f} + {answer_seconds[size]:.1f}"
        rows.append(
            [
                label,
                index.snapshot.kind,
                encode,
                f"{build:.2f}",
                f"{p50:.1f}",
                f"{p95:.1f}",
                f"{p99:.1f}",
                f"{np.percentile(encodes, 95):.1f} / {np.percentile(rest, 95):.1f}",
                "yes" if p95 <= P95_BUDGET_MS else "NO",
                f"{edit_seconds:.2f}",
                others,
            ]
        )
        del index, entries
        gc.collect()

    throughput_columns = ["batch size", "questions / s", "ms per batch", "others' CPU"]
    throughput_rows = [
        [size, f"{rate:.0f}", f"{per_batch:.1f}", others] for size, rate, per_batch, others in throughput
    ]
    table = Table(title=f"Encoder throughput ({THROUGHPUT_TEXTS} questions)")
    for column in throughput_columns:
        table.add_column(column)
    for row in throughput_rows:
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)

    path = report(
        "faq_speed",
        "FAQ index: build time and search latency (product settings, query encoding included)",
        [
            "FAQs",
            "index",
            "encode s",
            "build s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p95 encode / rest ms",
            f"p95 ≤ {P95_BUDGET_MS:.0f} ms",
            "edit s",
            "others' CPU",
        ],
        rows,
        note="\n".join(
            [
                f"Encoder {model.name} on the CPU ({real.engine}); settings: index kind {config.kind} "
                f"(flat up to {config.flat_max_vectors:,} vectors, HNSW M={config.hnsw_m}, efSearch="
                f"{config.hnsw_ef_search} above), dense weight {config.dense_weight}, answer weight "
                f"{config.answer_weight}.",
                "",
                "- Corpora: seeded synthetic shop FAQs (bench.synthetic_questions), one question and one "
                "answer each. encode s: encoding the questions + the answers (`passage: ` prompt), in "
                "the encoder's batches of 32. build s: `FaqIndex.sync` from those vectors (dense index, "
                f"BM25, answer vectors), encoding excluded. Only the first {REAL_VECTORS:,} FAQs are "
                "encoded: the others get a real FAQ's vectors plus Gaussian noise "
                f"(σ = {NOISE_SIGMA} per dimension), renormalised, and no encode time "
                f"(about {full_encode:.0f} s for {max(SIZES):,} FAQs, {max(SIZES) // REAL_VECTORS}× the "
                f"{REAL_VECTORS:,} time); their texts are real and distinct.",
                f"- Search: `FaqIndex.rank(query, top_k={TOP_K})` for {SEARCHES} synthetic customer "
                f"questions after {WARM_UP} warm-up ones, one at a time, each query encoded for real "
                "inside the timed call. p95 encode / rest splits it into the query's encoding and the "
                "rest (dense search, BM25, fusion), each its own p95.",
                "- edit s: `sync` of the full list with one question rewritten (that one encoded for real).",
                f"- {largest:,} ({other} forced): the same corpus with kind={other}, for comparison; "
                f"with the settings, flat is used up to {config.flat_max_vectors:,} rows (a FAQ takes "
                "one row per phrasing, so FAQs with alternative questions count several times).",
                f"- others' CPU: the share of the {os.cpu_count()} cores that other processes used while "
                f"that row was timed ({whole_run.describe()} over the whole run). Above a few percent the "
                "encoder's times are not the machine's: rerun on a quiet machine.",
                "",
                f"Encoder throughput ({THROUGHPUT_TEXTS} synthetic customer questions, "
                f"{np.mean([len(q) for q in samples]):.0f} "
                "characters on average):",
                "",
                _markdown_table(throughput_columns, throughput_rows),
                "",
                "Command: `.venv-app/bin/python -m bench.faq_speed`.",
            ]
        ),
    )
    print(f"written to {path} in {(time.monotonic() - started) / 60:.1f} min")


class _CorpusEncoder:
    """The real encoder, except for the corpus texts it is told to serve from precomputed vectors.

    Lets 100,000 FAQs be indexed without encoding them all. Every other text (each timed query,
    an edited question) goes to the real encoder; its last call's duration is kept.
    """

    def __init__(self, encoder: SentenceEncoder) -> None:
        self._encoder = encoder
        self._dimension = encoder.dimension
        # passage (an answer) or not -> (text -> row, vectors)
        self._known: dict[bool, tuple[dict[str, int], Vectors]] = {}
        self.last_encode_s = 0.0

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_id(self) -> str:
        return self._encoder.model_id

    def serve(
        self,
        questions: Sequence[str],
        question_vectors: Vectors,
        answers: Sequence[str],
        answer_vectors: Vectors,
    ) -> None:
        self._known = {
            False: ({text: row for row, text in enumerate(questions)}, question_vectors),
            True: ({text: row for row, text in enumerate(answers)}, answer_vectors),
        }

    def clear(self) -> None:
        self._known = {}

    def encode(self, texts: list[str], *, passage: bool = False) -> Vectors:
        rows, vectors = self._known.get(passage, ({}, np.zeros((0, self._dimension), np.float32)))
        known = [i for i, text in enumerate(texts) if text in rows]
        if not known:
            return self._encode(texts, passage)
        out = vectors[[rows[texts[i]] for i in known]]
        if len(known) == len(texts):
            return out
        missing = [i for i, text in enumerate(texts) if text not in rows]
        result = np.empty((len(texts), self._dimension), dtype=np.float32)
        result[known] = out
        result[missing] = self._encode([texts[i] for i in missing], passage)
        return result

    def _encode(self, texts: list[str], passage: bool) -> Vectors:
        begun = time.perf_counter()
        vectors = self._encoder.encode(texts, passage=passage)
        self.last_encode_s = time.perf_counter() - begun
        return vectors


def _throughput(encoder: SentenceEncoder, texts: list[str]) -> list[tuple[int, float, float, str]]:
    """(batch size, questions per second, ms per batch, others' CPU) for each of BATCH_SIZES."""
    results = []
    for size in BATCH_SIZES:
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        encoder.encode(batches[0])  # warm up this shape
        others = OtherLoad()
        begun = time.perf_counter()
        for batch in _progress(batches, f"encoding at batch size {size}"):
            encoder.encode(batch)
        elapsed = time.perf_counter() - begun
        results.append((size, len(texts) / elapsed, elapsed / len(batches) * 1000, others.describe()))
    return results


def _corpus_vectors(
    encoder: SentenceEncoder, texts: list[str], *, passage: bool
) -> tuple[Vectors, dict[int, float]]:
    """Vectors for every text (the first REAL_VECTORS encoded), and the encode time per size."""
    real = min(REAL_VECTORS, len(texts))
    parts: list[Vectors] = []
    seconds: dict[int, float] = {}
    spent = 0.0
    chunks = range(0, real, ENCODE_CHUNK)
    for start in _progress(chunks, f"encoding {real:,} FAQ {'answers' if passage else 'questions'}"):
        begun = time.perf_counter()
        parts.append(encoder.encode(texts[start : start + ENCODE_CHUNK], passage=passage))
        spent += time.perf_counter() - begun
        done = min(start + ENCODE_CHUNK, real)
        if done in SIZES or done == real:
            seconds[done] = spent
    encoded = np.vstack(parts)
    if len(texts) == real:
        return encoded, seconds
    rng = np.random.default_rng(NOISE_SEED + passage)
    sources = encoded[np.arange(real, len(texts)) % real]
    noisy = sources + rng.normal(0.0, NOISE_SIGMA, sources.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return np.ascontiguousarray(np.vstack([encoded, noisy]), dtype=np.float32), seconds


def _search(
    index: FaqIndex, encoder: _CorpusEncoder, queries: list[str], label: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-query milliseconds of `rank` and of the query's encoding within it."""
    lexical_tokens.cache_clear()  # every query is tokenised anew, as a customer's new question is
    for query in queries[:WARM_UP]:
        index.rank(query, top_k=TOP_K)
    gc.collect()
    totals, encodes = [], []
    for query in _progress(queries[WARM_UP:], f"searching {label} FAQs"):
        begun = time.perf_counter()
        ranked = index.rank(query, top_k=TOP_K)
        totals.append(time.perf_counter() - begun)
        encodes.append(encoder.last_encode_s)
        if not ranked:
            raise SystemExit(f"no FAQ found for {query!r}: the index of {label} FAQs is broken")
    return np.array(totals) * 1000, np.array(encodes) * 1000


def _edit(index: FaqIndex, entries: list[FaqEntry]) -> float:
    """Seconds for `sync` of the whole list with one FAQ's question rewritten."""
    edited = list(entries)
    middle = len(edited) // 2
    old = edited[middle]
    edited[middle] = replace(old, question=old.question.rstrip("？?") + "，有什么需要注意的？")
    begun = time.perf_counter()
    sync = index.sync(edited)
    seconds = time.perf_counter() - begun
    if (sync.changed, sync.encoded) != (1, 1):
        raise SystemExit(f"editing one FAQ changed {sync.changed} and encoded {sync.encoded} phrasings")
    return seconds


def _progress(items: Sequence[T], description: str) -> Iterable[T]:
    return track(items, description=description, console=_stderr, transient=True)


def _dense_kind(config: IndexConfig, rows: int) -> str:
    """The index kind the settings pick for this many rows (as knowledge.index decides)."""
    if config.kind != "auto":
        return config.kind
    return "flat" if rows <= config.flat_max_vectors else "hnsw"


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
