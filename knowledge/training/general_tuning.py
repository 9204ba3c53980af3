"""The general customer-service encoder, tuned once at set-up from the project's own paraphrases.

multilingual-e5-small ranks "花花付为什么开通不了" above "花花付怎么开通" for "我想开个花花付咋弄":
it weighs the shared product name more than the words that decide which FAQ is meant. Customer
questions are full of such near-duplicates (the same product with another action, the same action
with "为什么不能"), so the base model is tuned on paraphrases written for this project
(knowledge/data/paraphrase_corpus.json: 3,987 paraphrases of 1,701 FAQs: banking, consumer credit
and payment, shopping, services, a phone assistant and chit-chat, everyday and Q&A-community
questions, in clean, small-edit and real-traffic styles), each paired with its FAQ's question and
with the FAQ the base model confuses it with most (a hard negative).

The same weakness shows when a customer names the product in a policy question: "空气净化器保修多久啊"
went to "空气净化器滤网多久换一次" rather than "商品保修多久". The last set of the corpus (shop_products:
eight shops that sell none of the demo shop's products, 144 FAQs, 429 paraphrases) teaches that
case and its reverse, a product question inside a story. Scored as the product then did (dense
weight 0.95, answer weight 1.0), it raised hit@1 on the second dev set of the demo FAQs from 0.916
to 0.941 (dense alone 0.857 → 0.899); the first dev set stayed at 0.983, and the six dev halves
moved by −0.004 to +0.018 (dense). That second set was written to the same brief of colloquial
styles as this training set, so its gain flatters.

Tuned weights alone can fit the corpus's style too well: with the first 2,451 paraphrases, dense
hit@1 on the demo shop's paraphrases (which the corpus does not touch) fell from 0.958 to 0.933.
So the tuned weights are averaged with the base ones, WiSE-FT style (Wortsman et al., "Robust
fine-tuning of zero-shot models", 2022): θ = (1 − α)·θ_base + α·θ_tuned. α is the best dense MRR
on the demo paraphrases, ties broken by the mean MRR over all seven dev sets (bench/data; scored
on a run whose corpus still held 2 FAQs and 6 paraphrases since removed as too close to dev
questions: α 0.5: demo 0.980, mean 0.941; 0.75: 0.980, 0.946; 1.0: 0.973, 0.948); it was not
chosen again for the later corpus. The model built from the current corpus with α = 0.75 raises
dense hit@1 on the dev halves of the corpus's own sets, base → tuned, from 0.805 to 0.833
(general), 0.927 to 0.943 (user traffic), 0.805 to 0.869 (real traffic), 0.898 to 0.927
(assistant chat), 0.860 to 0.919 (finance) and 0.963 to 0.974 (Q&A community); first dev set of
the demo FAQs 0.958 → 0.967.

The result is `var/models/multilingual-e5-small-cs`, which the product encodes with
(knowledge.settings.general_model_dir); `crmbot faq tune` tunes a shop's own model from it.

Run by scripts/setup.sh (`python -m knowledge.training.general_tuning`, about nine minutes on two
cores); skipped when the stamp shows the same base model, corpus, code and settings. The public
evaluation sets (docs/evaluation-sets.md) are test sets and are never read here.
"""

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from knowledge.encoder import SentenceEncoder
from knowledge.model_files import STAMP_FILE
from knowledge.settings import BASE_MODEL_DIR, PROJECT_ROOT, SERVICE_MODEL_DIR
from knowledge.text import normalise
from knowledge.training.tuning import train

logger = logging.getLogger(__name__)

CORPUS: Final = PROJECT_ROOT / "knowledge" / "data" / "paraphrase_corpus.json"
# Chosen on the dev halves (bench/data): two epochs gained on all three, one gained less.
EPOCHS: Final = 2
BATCH_SIZE: Final = 32
LEARNING_RATE: Final = 2e-5
SEED: Final = 13
# Share of the tuned weights in the saved model; the rest are the base model's (see above).
TUNED_SHARE: Final = 0.75
# Earlier versions of this module and knowledge/training/tuning.py that tune exactly as they do:
# the two files as they were in knowledge/ (at 29dc47e, and with their docstrings pointing at
# docs/evaluation-sets.md) before they moved here unchanged but for imports and docstrings. A
# model one of them stamped is current, so moving the code does not retune for nine minutes for
# nothing; a change to the tuning itself gives a hash not listed here.
_EQUIVALENT_CODE: Final = frozenset(
    {
        "7134dfdc497668225fabc8140afa88c7a18c8b066f9f562cd5405bb2ae7362f6",
        "f360c5e5e2a84701e25fbbce54684681cb683128a8655bca2d2803778c49c77e",
    }
)


@dataclass(frozen=True)
class CorpusSet:
    """One FAQ bank and paraphrases of its FAQs; hard negatives are mined within the set."""

    name: str
    questions: dict[str, str]  # faq key ("set:id") -> FAQ question
    pairs: list[tuple[str, str]]  # (paraphrase, faq key)


def load_corpus(path: Path = CORPUS) -> list[CorpusSet]:
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    sets = []
    for block in data["sets"]:
        name = str(block["name"])
        questions = {f"{name}:{f['faq_id']}": normalise(str(f["question"])) for f in block["faqs"]}
        pairs = [(normalise(str(q["query"])), f"{name}:{q['faq_id']}") for q in block["queries"]]
        sets.append(CorpusSet(name, questions, [p for p in pairs if p[1] in questions]))
    return sets


def hard_negatives(encoder: SentenceEncoder, corpus: list[CorpusSet]) -> dict[str, str]:
    """For each paraphrase, the other FAQ of its set that the encoder finds closest to it."""
    negatives: dict[str, str] = {}
    for part in corpus:
        keys = list(part.questions)
        if len(keys) < 2 or not part.pairs:
            continue
        faq_vectors = encoder.encode([part.questions[key] for key in keys])
        query_vectors = encoder.encode([text for text, _ in part.pairs])
        similarity = query_vectors @ faq_vectors.T
        for row, (text, key) in enumerate(part.pairs):
            for column in np.argsort(-similarity[row]):
                if keys[column] != key:
                    negatives[text] = keys[column]
                    break
    return negatives


def _stamp(base: Path, corpus: Path) -> dict[str, str]:
    return {
        "base_stamp_sha256": hashlib.sha256((base / STAMP_FILE).read_bytes()).hexdigest(),
        "corpus_sha256": hashlib.sha256(corpus.read_bytes()).hexdigest(),
        "code_sha256": hashlib.sha256(
            Path(__file__).read_bytes() + (Path(__file__).parent / "tuning.py").read_bytes()
        ).hexdigest(),
    }


def stamp_key(base: Path = BASE_MODEL_DIR, corpus: Path = CORPUS) -> str:
    """A short hash of the stamp a model tuned now would carry: its name in the model cache."""
    stamp = json.dumps(_stamp(base, corpus), sort_keys=True).encode()
    return hashlib.sha256(stamp).hexdigest()[:20]


def is_built(target: Path = SERVICE_MODEL_DIR, base: Path = BASE_MODEL_DIR, corpus: Path = CORPUS) -> bool:
    """True when `target` was tuned from this base model and corpus by this code (or an
    equivalent earlier version of it)."""
    stamp = target / STAMP_FILE
    if not stamp.is_file() or not (base / STAMP_FILE).is_file():
        return False
    recorded = json.loads(stamp.read_text(encoding="utf-8"))
    wanted = _stamp(base, corpus)
    if isinstance(recorded, dict) and recorded.get("code_sha256") in _EQUIVALENT_CODE:
        wanted["code_sha256"] = recorded["code_sha256"]
    return bool(recorded == wanted)


def build(
    target: Path = SERVICE_MODEL_DIR,
    base: Path = BASE_MODEL_DIR,
    corpus: Path = CORPUS,
    *,
    epochs: int = EPOCHS,
) -> Path:
    """Tune `base` on `corpus` into `target`, written beside it and renamed into place."""
    parts = load_corpus(corpus)
    base_encoder = SentenceEncoder(base)
    negatives = hard_negatives(base_encoder, parts)
    pairs = [pair for part in parts for pair in part.pairs]
    questions = {key: text for part in parts for key, text in part.questions.items()}
    model = train(
        base,
        pairs,
        questions,
        epochs=epochs,
        seed=SEED,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        hard_negatives=negatives,
    )
    _average_with(model, base_encoder.model, TUNED_SHARE)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tune-") as tmp:
        built = Path(tmp) / "model"
        model.save(str(built))
        (built / STAMP_FILE).write_text(json.dumps(_stamp(base, corpus), indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        built.rename(target)
    return target


def _average_with(model: Any, base: Any, tuned_share: float) -> None:
    """Replace `model`'s weights by (1 − tuned_share)·base + tuned_share·model, in place."""
    import torch

    base_weights = base.state_dict()
    tuned_weights = model.state_dict()
    with torch.no_grad():
        for name, tuned in tuned_weights.items():
            if tuned.is_floating_point():
                tuned.mul_(tuned_share).add_(base_weights[name], alpha=1.0 - tuned_share)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tune the customer-service FAQ encoder.")
    parser.add_argument("--force", action="store_true", help="tune again even if already built")
    args = parser.parse_args(argv)
    if not args.force and is_built():
        print(f"customer-service encoder already built: {SERVICE_MODEL_DIR}")
        return 0
    started = time.monotonic()
    print(f"tuning the customer-service encoder into {SERVICE_MODEL_DIR} (about nine minutes) …")
    build()
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
