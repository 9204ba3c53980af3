"""Domain tuning (`crmbot faq tune`): teach the encoder this shop's own ways of asking.

Training pairs (paraphrase → its FAQ's main question) come only from the knowledge base:

- every alternative phrasing of every FAQ, and every unanswered question staff resolved into a
  FAQ (`crm_store.faqs.paraphrase_pairs`);
- the `ask_faq` examples of the bot's NLU data, mapped to a FAQ by the base model where it is
  confident enough to answer (the calibrated "answer" decision, ≥ 95 % precise on dev questions);
  they carry the customers' colloquial style. Examples it is not sure of are left out.

A seeded fifth of the store's pairs (by paraphrase, never by FAQ, so every FAQ stays in the
index) is held out. Both models are scored on it the way the product searches: a paraphrase is
ranked against every FAQ with its remaining phrasings. The tuned model is saved beside the base
one and used (`accepted.json`) only if it is better: higher hit@1, or equal hit@1 and higher MRR.

Loss: sentence-transformers' MultipleNegativesRankingLoss (in-batch negatives), both sides with
the `query: ` prompt the product encodes with. A plain loop on the CPU: a few hundred pairs take
a few minutes, and it needs no `datasets`/`accelerate`.

The public evaluation sets (docs/evaluation-sets.md) are test sets and are never read here.
"""

import json
import logging
import random
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from crm_store import faqs as faq_store
from knowledge.decision import decide
from knowledge.encoder import QUESTION_PROMPT, SentenceEncoder
from knowledge.errors import TuningError
from knowledge.index import FaqIndex
from knowledge.model_files import STAMP_FILE
from knowledge.service import entries_from_store, index_config, thresholds
from knowledge.settings import PROJECT_ROOT, KnowledgeSettings, general_model_dir, get_knowledge_settings
from knowledge.training.onnx_export import export_graph
from knowledge.types import FaqEntry

logger = logging.getLogger(__name__)

NLU_DIR = PROJECT_ROOT / "bot" / "data" / "nlu"
HELD_OUT_SHARE = 0.2
MIN_PAIRS = 10
# A tuned model is used only when its gain on the held-out pairs is this unlikely by chance.
MAX_CHANCE = 0.1
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


@dataclass(frozen=True)
class Figures:
    n: int
    hit1: float
    mrr: float


@dataclass(frozen=True)
class Comparison:
    """The tuned model against the base one on the same held-out paraphrases: how many it ranks
    better and worse, and the one-sided sign test's p-value of that split."""

    better: int
    worse: int
    p_value: float

    @property
    def beyond_chance(self) -> bool:
        return self.p_value < MAX_CHANCE


@dataclass(frozen=True)
class TuneReport:
    base: Figures
    tuned: Figures
    accepted: bool
    train_pairs: int
    heldout_pairs: int
    seconds: float
    comparison: Comparison


def compare(base_ranks: Sequence[float], tuned_ranks: Sequence[float]) -> Comparison:
    """Sign test over paired reciprocal ranks: ties say nothing and are left out."""
    from scipy.stats import binomtest

    better = sum(t > b for b, t in zip(base_ranks, tuned_ranks, strict=True))
    worse = sum(t < b for b, t in zip(base_ranks, tuned_ranks, strict=True))
    if better + worse == 0:
        return Comparison(0, 0, 1.0)
    p_value = float(binomtest(better, better + worse, 0.5, alternative="greater").pvalue)
    return Comparison(better, worse, p_value)


def ask_faq_examples(nlu_dir: Path = NLU_DIR) -> list[str]:
    """The `ask_faq` training examples of the bot, with entity annotations removed."""
    examples: list[str] = []
    for file in sorted(nlu_dir.glob("*.yml")):
        data: Any = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu", []) or []:
            if block.get("intent") != "ask_faq":
                continue
            for line in str(block.get("examples", "")).splitlines():
                line = line.strip()
                if line.startswith("- "):
                    examples.append(_ANNOTATION.sub(r"\1", line[2:]).strip())
    return [e for e in examples if e]


def split_pairs(
    pairs: Sequence[tuple[str, str]], seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Seeded split into (train, held out); a FAQ with a single paraphrase keeps it for training."""
    by_faq: dict[str, list[tuple[str, str]]] = {}
    for pair in pairs:
        by_faq.setdefault(pair[1], []).append(pair)
    rng = random.Random(seed)
    train: list[tuple[str, str]] = []
    held_out: list[tuple[str, str]] = []
    for faq_pairs in by_faq.values():
        shuffled = faq_pairs[:]
        rng.shuffle(shuffled)
        take = int(round(HELD_OUT_SHARE * len(shuffled))) if len(shuffled) > 1 else 0
        held_out += shuffled[:take]
        train += shuffled[take:]
    return train, held_out


def _figures(ranks: Sequence[float]) -> Figures:
    n = len(ranks)
    return Figures(n=n, hit1=sum(r == 1.0 for r in ranks) / max(n, 1), mrr=sum(ranks) / max(n, 1))


def reciprocal_ranks(
    encoder: SentenceEncoder, entries: Sequence[FaqEntry], held_out: Sequence[tuple[str, str]]
) -> list[float]:
    """1/rank of each held-out paraphrase's FAQ (0 beyond the top 10), FAQs indexed without them."""
    hidden = {(text, faq_id) for text, faq_id in held_out}
    visible = [
        FaqEntry(
            e.faq_id,
            e.question,
            e.answer,
            tuple(a for a in e.alt_questions if (a, e.faq_id) not in hidden),
            e.category,
        )
        for e in entries
    ]
    index = FaqIndex(encoder, index_config(get_knowledge_settings()))
    index.sync(visible)
    ranks: list[float] = []
    for text, faq_id in held_out:
        ids = [s.entry.faq_id for s in index.rank(text, top_k=10)]
        ranks.append(1.0 / (ids.index(faq_id) + 1) if faq_id in ids else 0.0)
    return ranks


def _confident_examples(
    encoder: SentenceEncoder,
    entries: Sequence[FaqEntry],
    settings: KnowledgeSettings,
    examples: Iterable[str],
) -> list[tuple[str, str]]:
    index = FaqIndex(encoder, index_config(settings))
    index.sync(entries)
    limits = thresholds(settings)
    pairs = []
    for example in examples:
        ranked = index.rank(example, top_k=3)
        if decide(ranked, limits) == "answer":
            pairs.append((example, ranked[0].entry.faq_id))
    return pairs


def train(
    base_dir: Path,
    pairs: Sequence[tuple[str, str]],
    main_question: dict[str, str],
    *,
    epochs: int,
    seed: int,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    hard_negatives: Mapping[str, str] | None = None,
) -> Any:
    """Fine-tune a copy of the base model on (paraphrase, main question) pairs; return it.

    `hard_negatives` maps a paraphrase to a FAQ it must not match (one the base model confuses
    it with); that FAQ's question joins the in-batch negatives of its paraphrase.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(seed)
    model = SentenceTransformer(str(base_dir), device="cpu", local_files_only=True)
    prompt = str(model.prompts.get(QUESTION_PROMPT) or "")
    loss = MultipleNegativesRankingLoss(model)
    # The 250k-row word-embedding table is most of the weights; freezing it keeps the update
    # small and the tokens a customer never typed where they were.
    for name, parameter in model.named_parameters():
        if "word_embeddings" in name:
            parameter.requires_grad_(False)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    rng = random.Random(seed)
    model.train()
    for _epoch in range(epochs):
        order = list(pairs)
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = _distinct_faqs(order[start : start + batch_size], hard_negatives or {})
            if len(batch) < 2:
                continue
            columns = [
                [prompt + text for text, _ in batch],
                [prompt + main_question[faq_id] for _, faq_id in batch],
            ]
            if hard_negatives:
                columns.append([prompt + main_question[hard_negatives[text]] for text, _ in batch])
            value = loss([model.tokenize(column) for column in columns], torch.empty(0))
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
    model.eval()
    return model


def _distinct_faqs(
    batch: Sequence[tuple[str, str]], hard_negatives: Mapping[str, str]
) -> list[tuple[str, str]]:
    # In-batch negatives must be other FAQs: two paraphrases of one FAQ in a batch would each be
    # told the other's main question is wrong, and so would a paraphrase whose FAQ is another
    # one's hard negative.
    positives: set[str] = set()
    negatives: set[str] = set()
    kept = []
    for text, faq_id in batch:
        negative = hard_negatives.get(text)
        if hard_negatives and negative is None:
            continue  # every row of a batch with hard negatives needs one
        if faq_id in positives or faq_id in negatives or negative in positives:
            continue
        positives.add(faq_id)
        if negative is not None:
            negatives.add(negative)
        kept.append((text, faq_id))
    return kept


def tune_from_store(sessions: sessionmaker[Session], *, epochs: int = 2, seed: int = 13) -> TuneReport:
    started = time.monotonic()
    settings = get_knowledge_settings()
    with sessions() as session:
        entries = entries_from_store(session)
        store_pairs = faq_store.paraphrase_pairs(session)
    if len(store_pairs) < MIN_PAIRS:
        raise TuningError(
            f"同义问法太少（{len(store_pairs)} 对，至少需要 {MIN_PAIRS} 对），请先为 FAQ 补充几种问法。"
        )
    base_dir = general_model_dir()
    base = SentenceEncoder(base_dir)
    train_pairs, held_out = split_pairs(store_pairs, seed)
    held = set(held_out)
    visible_entries = [
        FaqEntry(
            e.faq_id, e.question, e.answer, tuple(a for a in e.alt_questions if (a, e.faq_id) not in held)
        )
        for e in entries
    ]
    held_texts = {text for text, _ in held_out}
    from_examples = [
        pair
        for pair in _confident_examples(base, visible_entries, settings, ask_faq_examples())
        if pair[0] not in held_texts
    ]
    all_train = list(dict.fromkeys([*train_pairs, *from_examples]))
    main_question = {e.faq_id: e.question for e in entries}

    base_ranks = reciprocal_ranks(base, entries, held_out)
    model = train(base_dir, all_train, main_question, epochs=epochs, seed=seed)
    _save(model, base_dir, settings.tuned_model_dir)
    tuned_ranks = reciprocal_ranks(SentenceEncoder(settings.tuned_model_dir), entries, held_out)
    base_figures, tuned_figures = _figures(base_ranks), _figures(tuned_ranks)
    comparison = compare(base_ranks, tuned_ranks)
    accepted = comparison.beyond_chance and tuned_figures.mrr > base_figures.mrr
    report = TuneReport(
        base=base_figures,
        tuned=tuned_figures,
        accepted=accepted,
        train_pairs=len(all_train),
        heldout_pairs=len(held_out),
        seconds=time.monotonic() - started,
        comparison=comparison,
    )
    if accepted:
        report_text = json.dumps(asdict(report), indent=2) + "\n"
        settings.tuned_model_accepted.write_text(report_text, encoding="utf-8")
    else:
        settings.tuned_model_accepted.unlink(missing_ok=True)
    logger.info("tuning: base %s, tuned %s, accepted=%s", base_figures, tuned_figures, accepted)
    return report


def _save(model: Any, tuned_from: Path, target: Path) -> None:
    staging = target.with_name(target.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    model.save(str(staging))
    # A new stamp gives the tuned weights a new model id, so no index built by older ones is reused.
    (staging / STAMP_FILE).write_text(json.dumps({"tuned_from": str(tuned_from), "at": time.time()}) + "\n")
    export_graph(staging)
    # A new tuned model is not accepted until it has been scored.
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
