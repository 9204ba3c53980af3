"""How much of the encoder's tuning carries over to questions in a style it was never tuned on.

    .venv-app/bin/python -m bench.faq_unseen_style        (about ten minutes on two cores)

The public sets (docs/evaluation-sets.md) are user sentences from a Q&A community and a voice
assistant, written by nobody on this project; they are test sets, so nothing may be chosen on
them. This benchmark stands in for them with our own data: it tunes the base model exactly as
set-up does (knowledge.general_tuning.build, the product's tuned share), but without the corpus
sets of two styles, the voice assistant (assistant_general, assistant_chat) and the Q&A
community (everyday_qa). It then measures the dev halves of those styles (bench/data: assistant
chat, everyday Q&A), which that model has seen nothing like, beside the four dev halves whose
styles it was tuned on. Rows: the base model; that model ("tuned without these styles"); the
product's encoder, tuned on all sets (for reference: the styles were in its training). Columns:
hit@1 / MRR at a few dense weights (the rest is BM25), questions ranked as FaqIndex.rank ranks
them.

What it showed (2026-12-04, bench/results/faq_unseen_style.md): tuning without a style leaves
that style where the base model has it (assistant chat MRR 0.933 base, 0.928 tuned without it,
0.951 tuned with it; everyday Q&A 0.980, 0.982, 0.984), while the styles it was tuned on gain
(mean MRR 0.900 → 0.924). That is what the public sets show for the product's encoder (equal to
or just below plain e5). A BM25 share does not help the unseen styles beyond noise (mean MRR of
the two at dense weight 1.0 / 0.95 / 0.9: 0.955 / 0.957 / 0.956). So neither more tuning on the
styles we have nor a BM25 share is a reason to expect the public sets to move.
"""

import json
import tempfile
from pathlib import Path

import numpy as np

from bench.faq_data import CORPUS_DEV_SETS
from bench.faq_ranking import EncodedQuestions, hit1_and_mrr
from bench.results_table import report
from knowledge.encoder import SentenceEncoder
from knowledge.evaluation import load_eval_set
from knowledge.index import FaqIndex
from knowledge.settings import BASE_MODEL_DIR, SERVICE_MODEL_DIR
from knowledge.text import normalise
from knowledge.training.general_tuning import CORPUS, build

LEFT_OUT_SETS = ("assistant_general", "assistant_chat", "everyday_qa")
UNSEEN_DEV_SETS = ("assistant chat", "everyday Q&A")
SEEN_DEV_SETS = tuple(name for name in CORPUS_DEV_SETS if name not in UNSEEN_DEV_SETS)
DENSE_WEIGHTS = (1.0, 0.95, 0.9, 0.85)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="unseen-style-") as tmp:
        corpus = json.loads(CORPUS.read_text(encoding="utf-8"))
        corpus["sets"] = [block for block in corpus["sets"] if block["name"] not in LEFT_OUT_SETS]
        reduced = Path(tmp) / "corpus.json"
        reduced.write_text(json.dumps(corpus, ensure_ascii=False), encoding="utf-8")
        print(f"tuning without {', '.join(LEFT_OUT_SETS)} (about ten minutes) …")
        without = build(Path(tmp) / "model", corpus=reduced)
        models = {
            "base model": BASE_MODEL_DIR,
            "tuned without these styles": without,
            "product encoder (tuned with them)": SERVICE_MODEL_DIR,
        }
        rows = [[name, *_figures(SentenceEncoder(path))] for name, path in models.items()]
    weights = " / ".join(map(str, DENSE_WEIGHTS))
    report(
        "faq_unseen_style",
        "Tuning and a BM25 share on dev questions in styles the encoder was not tuned on",
        [
            "encoder",
            *(f"{name} (unseen): hit@1, MRR at w = {weights}" for name in UNSEEN_DEV_SETS),
            f"mean MRR of the unseen two at w = {weights}",
            f"mean MRR of {', '.join(SEEN_DEV_SETS)} (styles tuned on) at w = {weights}",
        ],
        rows,
        note=f"Left out of tuning: corpus sets {', '.join(LEFT_OUT_SETS)} "
        "(knowledge/data/paraphrase_corpus.json). The dev halves are bench/data; the public sets "
        "are never read. Command: `.venv-app/bin/python -m bench.faq_unseen_style`.",
    )


def _figures(encoder: SentenceEncoder) -> list[str]:
    """The unseen sets' cells, the unseen mean MRR and the seen mean MRR, per dense weight."""
    mrr_by_set: dict[str, list[float]] = {}
    cells = []
    for name, path in CORPUS_DEV_SETS.items():
        faqs, queries = load_eval_set(path)
        index = FaqIndex(encoder)
        index.sync(faqs)
        questions = EncodedQuestions(index.snapshot, [normalise(q.query) for q in queries], encoder)
        truth = [q.faq_id for q in queries]
        figures = [hit1_and_mrr(questions.rank(weight, 0.0), truth) for weight in DENSE_WEIGHTS]
        mrr_by_set[name] = [mrr for _, mrr in figures]
        if name in UNSEEN_DEV_SETS:
            cells.append(" / ".join(f"{hit1:.3f}, {mrr:.3f}" for hit1, mrr in figures))

    def mean_mrr(names: tuple[str, ...]) -> str:
        means = np.mean([mrr_by_set[name] for name in names], axis=0)
        return " / ".join(f"{value:.3f}" for value in means)

    return [*cells, mean_mrr(UNSEEN_DEV_SETS), mean_mrr(SEEN_DEV_SETS)]


if __name__ == "__main__":
    main()
