"""Choose the fusion weight and the answer/suggest thresholds on our own dev questions.

    .venv-app/bin/python -m bench.faq_calibrate

calibrates the product's encoder. With KNOWLEDGE_MODEL set (`KNOWLEDGE_MODEL=var/models/
multilingual-e5-small`, the base model that serves until the tuned one is ready), it calibrates
that model instead, and its table goes to bench/results/faq_calibration-<model directory>.md.

Data, all written for this project: the demo FAQs with bench/data/faq_dev_paraphrases.json
(120 paraphrases, 25 questions no FAQ answers) and faq_dev_demo_second.json (237 more colloquial
paraphrases, 35 questions no FAQ answers), taken together; bench/data/faq_dev_general.json (400 FAQs
from banking, a phone assistant, everyday questions and shopping, 800 paraphrases that avoid the
FAQ's words); bench/data/faq_dev_usertraffic.json (300 FAQs, paraphrases that are mostly small
edits, as in real search and assistant logs); bench/data/faq_dev_realtraffic.json (320 FAQs,
many one product, action or condition apart, with noisy colloquial queries); and three sets of
300 FAQs with many near-duplicates, bench/data/faq_dev_assistant_chat.json (a phone assistant and
chit-chat), faq_dev_finance_cs.json (consumer-finance customer service) and
faq_dev_everyday_qa.json (Q&A-community questions). Of the last six, only the queries of the FAQs
the encoder was not tuned on are here (the other half trains it: knowledge.general_tuning);
every FAQ stays in the bank. The public
sets (docs/evaluation-sets.md) are test sets and are never used here, nor are the held-out paraphrases
under tests/knowledge/data.

Every question is ranked as `FaqIndex.rank` ranks it, its sound-alike reading included
(knowledge.homophones); the ranking is recomputed for each setting from vectors encoded once.

Rules, applied in order:
1. dense weight w: the best mean MRR over seven sets, the demo pair counted as one (ties: the
   larger w); then the answer weight a (query-answer relevance) the same way at that w (ties: the
   smaller a); then the crowding weight c (knowledge.crowding) the same way at that w and a, over
   those seven and the six corpus sets worded by customers (bench.faq_data.customer_worded: one
   customer question of each FAQ stands in for its text, the kind of bank the correction is for),
   among the values that keep the demo dev hit@1 of c = 0 (the product's own FAQs come first),
   ties: the smaller c;
2. answer threshold and margin: the pair that answers the most paraphrases directly while at
   most 4 % of the out-of-domain questions would be answered and at least 95 % of the answered
   paraphrases are right;
3. suggest threshold: the highest value that still offers suggestions for at least 95 % of the
   paraphrases whose right FAQ is in the top three (so they are not sent away with "none").
"""

import itertools

import numpy as np

from bench.faq_data import CORPUS_DEV_SETS, customer_worded, demo_dev_set, demo_faqs
from bench.faq_ranking import EncodedQuestions, hit1_and_mrr
from bench.results_table import report
from knowledge.encoder import SentenceEncoder
from knowledge.evaluation import EvalQuery, load_eval_set
from knowledge.index import FaqIndex, IndexConfig, ScoredFaq
from knowledge.settings import SERVICE_MODEL_DIR, general_model_dir, get_knowledge_settings
from knowledge.text import normalise
from knowledge.types import FaqEntry

WEIGHTS = (1.0, 0.99, 0.98, 0.97, 0.95, 0.93, 0.9, 0.85, 0.8)
ANSWER_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0)
CROWDING_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
MAX_OOD_ANSWERED = 0.04
MIN_ANSWER_PRECISION = 0.95
MIN_SUGGEST_RECALL = 0.95


def main() -> None:
    model = get_knowledge_settings().model or general_model_dir()
    encoder = SentenceEncoder(model)
    # Answers are encoded, and crowding kept, only for an index whose score reads them.
    index = FaqIndex(
        encoder, IndexConfig(answer_weight=max(ANSWER_WEIGHTS), crowding_weight=max(CROWDING_WEIGHTS))
    )
    index.sync(demo_faqs())
    dev = demo_dev_set()
    texts = [normalise(q) for q, _ in dev.queries] + [normalise(q) for q in dev.out_of_domain]
    questions = EncodedQuestions(index.snapshot, texts, encoder)
    n_in = len(dev.queries)
    truth = [faq for _, faq in dev.queries]

    def encoded(faqs: list[FaqEntry], queries: list[EvalQuery]) -> tuple[EncodedQuestions, list[str]]:
        other = FaqIndex(encoder, IndexConfig(crowding_weight=max(CROWDING_WEIGHTS)))
        other.sync(faqs)
        texts = [normalise(q.query) for q in queries]
        return EncodedQuestions(other.snapshot, texts, encoder), [q.faq_id for q in queries]

    others = [encoded(*load_eval_set(path)) for path in CORPUS_DEV_SETS.values()]
    worded_by_customers = [encoded(*customer_worded(*load_eval_set(p))) for p in CORPUS_DEV_SETS.values()]

    def measure(
        weight: float, answer_weight: float, crowding_weight: float | None = None
    ) -> tuple[list[list[ScoredFaq]], list[object]]:
        """Figures of one setting; with a crowding weight, also on the sets worded by customers."""
        crowding = crowding_weight or 0.0
        ranked = questions.rank(weight, answer_weight, crowding)
        figures = [hit1_and_mrr(ranked[:n_in], truth)]
        worded = worded_by_customers if crowding_weight is not None else []
        for other_questions, other_truth in others + worded:
            figures.append(hit1_and_mrr(other_questions.rank(weight, answer_weight, crowding), other_truth))
        row: list[object] = [
            f"w = {weight}, a = {answer_weight}" + (f", c = {crowding}" if worded else ""),
            " / ".join(f"{hit1:.3f}" for hit1, _ in figures),
            " / ".join(f"{mrr:.3f}" for _, mrr in figures),
            "",
            "",
        ]
        return ranked, [*row, float(np.mean([mrr for _, mrr in figures]))]

    # Stage 1: the dense weight, phrasings only. Stage 2: the answer weight at that dense weight
    # (the other sets have no answer texts, so only the demo FAQs can tell).
    rows: list[list[object]] = []
    best: tuple[float, float, float] = (-1.0, 1.0, 0.0)  # mean MRR, w, a
    for weight in WEIGHTS:
        _, row = measure(weight, 0.0)
        rows.append(row[:-1])
        if float(row[-1]) > best[0] + 1e-9:  # type: ignore[arg-type]
            best = (float(row[-1]), weight, 0.0)  # type: ignore[arg-type]
    best_weight = best[1]
    best = (-1.0, best_weight, 0.0)
    for answer_weight in ANSWER_WEIGHTS:
        _, row = measure(best_weight, answer_weight)
        if answer_weight:
            rows.append(row[:-1])
        if float(row[-1]) > best[0] + 1e-9:  # type: ignore[arg-type]
            best = (float(row[-1]), best_weight, answer_weight)  # type: ignore[arg-type]
    best_answer_weight = best[2]
    # Stage 3: the crowding weight, over thirteen sets (c = 0 measured on all of them too).
    crowding_ranked: dict[float, list[list[ScoredFaq]]] = {}
    mean_mrr: dict[float, float] = {}
    for crowding_weight in CROWDING_WEIGHTS:
        ranked, row = measure(best_weight, best_answer_weight, crowding_weight)
        crowding_ranked[crowding_weight] = ranked
        mean_mrr[crowding_weight] = float(row[-1])  # type: ignore[arg-type]
        rows.append(row[:-1])
    demo_hit1 = {c: hit1_and_mrr(r[:n_in], truth)[0] for c, r in crowding_ranked.items()}
    keeping_demo = [c for c in CROWDING_WEIGHTS if demo_hit1[c] >= demo_hit1[0.0]]
    best_crowding_weight = max(keeping_demo, key=lambda c: (round(mean_mrr[c], 9), -c))

    ranked = crowding_ranked[best_crowding_weight]
    in_domain, ood = ranked[:n_in], ranked[n_in:]
    answer, margin = _answer_thresholds(in_domain, truth, ood)
    suggest = _suggest_threshold(in_domain, truth, answer)
    answered_ood = sum(_top(r) >= answer and _gap(r) >= margin for r in ood)
    suggested_ood = sum(suggest <= _top(r) for r in ood) - answered_ood
    answered = [
        (r, f) for r, f in zip(in_domain, truth, strict=True) if _top(r) >= answer and _gap(r) >= margin
    ]
    right = sum(r[0].entry.faq_id == f for r, f in answered)
    rows.append(
        [
            f"chosen w = {best_weight}, a = {best_answer_weight}, c = {best_crowding_weight}",
            f"answer ≥ {answer:.3f}, margin ≥ {margin:.3f}",
            f"suggest ≥ {suggest:.3f}",
            f"paraphrases answered {len(answered)}/{n_in}, right {right}",
            f"out-of-domain answered {answered_ood}/{len(ood)}, suggested {suggested_ood}",
        ]
    )
    product = model.resolve() == SERVICE_MODEL_DIR.resolve()
    report(
        "faq_calibration" if product else f"faq_calibration-{model.name}",
        "FAQ fusion weights and decision thresholds (dev sets: demo FAQs / "
        f"{' / '.join(CORPUS_DEV_SETS)}; rows with c: then the same six worded by customers)",
        ["setting", "hit@1", "MRR", "answers (demo)", "out of domain (demo)"],
        rows,
        note="Copy the chosen values into knowledge/settings.py (KNOWLEDGE_DENSE_WEIGHT, "
        "KNOWLEDGE_ANSWER_WEIGHT, KNOWLEDGE_CROWDING_WEIGHT, KNOWLEDGE_ANSWER_SCORE, "
        "KNOWLEDGE_ANSWER_MARGIN, KNOWLEDGE_SUGGEST_SCORE); for another model, into "
        "knowledge/calibration.py.",
    )


def _top(ranked: list[ScoredFaq]) -> float:
    return ranked[0].score if ranked else 0.0


def _gap(ranked: list[ScoredFaq]) -> float:
    return ranked[0].score - ranked[1].score if len(ranked) > 1 else _top(ranked)


def _answer_thresholds(
    in_domain: list[list[ScoredFaq]], truth: list[str], ood: list[list[ScoredFaq]]
) -> tuple[float, float]:
    """The (threshold, margin) that answers the most paraphrases within the two limits."""
    scores = sorted({round(_top(r), 3) for r in in_domain + ood})
    best: tuple[int, float, float] = (0, 1.0, 0.0)
    for threshold, margin in itertools.product(scores, (0.0, 0.01, 0.02, 0.03, 0.05)):
        ood_answered = sum(_top(r) >= threshold and _gap(r) >= margin for r in ood) / len(ood)
        answered = [
            (r, f)
            for r, f in zip(in_domain, truth, strict=True)
            if _top(r) >= threshold and _gap(r) >= margin
        ]
        if not answered or ood_answered > MAX_OOD_ANSWERED:
            continue
        precision = sum(r[0].entry.faq_id == f for r, f in answered) / len(answered)
        if precision >= MIN_ANSWER_PRECISION and len(answered) > best[0]:
            best = (len(answered), threshold, margin)
    return best[1], best[2]


def _suggest_threshold(in_domain: list[list[ScoredFaq]], truth: list[str], answer: float) -> float:
    findable = [r for r, f in zip(in_domain, truth, strict=True) if f in {s.entry.faq_id for s in r[:3]}]
    tops = sorted((_top(r) for r in findable), reverse=True)
    keep = tops[max(0, int(np.ceil(MIN_SUGGEST_RECALL * len(tops))) - 1)] if tops else answer
    return round(min(keep, answer), 3)


if __name__ == "__main__":
    main()
