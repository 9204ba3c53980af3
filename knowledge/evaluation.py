"""Retrieval quality on a paraphrase set: hit@1, hit@5, MRR and per-query latency.

The set has the format of the public FAQ sets (docs/evaluation-sets.md):
`{"faqs": [{"faq_id", "question"}], "queries": [{"query", "faq_id"}]}`. A temporary index of its
FAQs is built with the same encoder and fusion as the product, then every query is searched
one at a time (query encoding included in its latency), as a customer's would be.
"""

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.encoder import Encoder
from knowledge.errors import EvalSetError as EvalSetError  # also importable from here, as before
from knowledge.index import FaqIndex, IndexConfig
from knowledge.types import FaqEntry

# Ranks beyond this count as a miss for MRR (1/rank would be below 0.1 anyway).
MRR_DEPTH = 10


@dataclass(frozen=True)
class EvalQuery:
    query: str
    faq_id: str


@dataclass(frozen=True)
class EvalResult:
    n: int
    hit1: float
    hit5: float
    mrr: float
    p50_ms: float
    p95_ms: float

    def as_json(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def load_eval_set(path: Path) -> tuple[list[FaqEntry], list[EvalQuery]]:
    """Read a paraphrase set; FAQ ids become strings so that they compare like the store's."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        faqs = [
            FaqEntry(faq_id=str(f["faq_id"]), question=str(f["question"]), answer=str(f.get("answer", "")))
            for f in data["faqs"]
        ]
        queries = [EvalQuery(query=str(q["query"]), faq_id=str(q["faq_id"])) for q in data["queries"]]
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"{path}: 无法读取（{exc.__class__.__name__}）") from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EvalSetError(f"{path}: 不是评测集格式，需要 faqs 与 queries 两个列表") from exc
    if not faqs or not queries:
        raise EvalSetError(f"{path}: faqs 或 queries 为空")
    return faqs, queries


def evaluate(
    encoder: Encoder,
    faqs: list[FaqEntry],
    queries: Iterable[EvalQuery],
    *,
    config: IndexConfig | None = None,
    progress: Callable[[Iterable[EvalQuery]], Iterable[EvalQuery]] = lambda q: q,
) -> EvalResult:
    index = FaqIndex(encoder, config)
    index.sync(faqs)
    ranks: list[int | None] = []
    latencies: list[float] = []
    for item in progress(queries):
        started = time.perf_counter()
        ranked = index.rank(item.query, top_k=MRR_DEPTH)
        latencies.append(time.perf_counter() - started)
        ids = [scored.entry.faq_id for scored in ranked]
        ranks.append(ids.index(item.faq_id) + 1 if item.faq_id in ids else None)
    n = len(ranks)
    if n == 0:
        raise EvalSetError("没有可评测的问题")
    return EvalResult(
        n=n,
        hit1=sum(1 for r in ranks if r == 1) / n,
        hit5=sum(1 for r in ranks if r is not None and r <= 5) / n,
        mrr=sum(1.0 / r for r in ranks if r is not None) / n,
        p50_ms=float(np.percentile(latencies, 50) * 1000),
        p95_ms=float(np.percentile(latencies, 95) * 1000),
    )
