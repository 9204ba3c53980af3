"""Fusion weights and decision thresholds calibrated for each encoder, keyed by its directory name.

The scores the decision compares with its thresholds are cosines (with a little BM25 and the
answer's relevance mixed in), and each encoder has cosines of its own: six unrelated customer
questions ("退货怎么弄", "今天天气怎么样", "发票怎么开" …) score 0.82–0.90 with each other in plain
multilingual-e5-small and −0.02–0.47 in the customer-service model tuned from it. So a threshold
chosen for one model answers wrongly, or never, with the other.
`python -m bench.faq_calibrate` chooses them on our own dev questions, for one model at a time:

- `multilingual-e5-small-cs`, the product's model tuned at set-up: bench/results/faq_calibration.md;
- `multilingual-e5-small`, the base model `crmbot up` serves until the tuned one is ready:
  bench/results/faq_calibration-multilingual-e5-small.md (`KNOWLEDGE_MODEL=var/models/
  multilingual-e5-small .venv-app/bin/python -m bench.faq_calibrate`).

A shop's own model (`crmbot faq tune`) has no row: it uses the row of the model it was tuned
from, which its stamp names. A model with no row at all (any other KNOWLEDGE_MODEL) gets the
defaults of crm_store/settings.py, which are the product model's values.

A value the user set (an environment variable such as KNOWLEDGE_ANSWER_SCORE, `.env`, or an
argument of `KnowledgeSettings`) always wins over the table: `calibrated` only fills in the fields
that were left at their defaults.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from knowledge.model_files import STAMP_FILE
from knowledge.settings import BASE_MODEL_DIR, SERVICE_MODEL_DIR, KnowledgeSettings

__all__ = ["CALIBRATED", "Calibration", "calibrated", "calibration_for"]


@dataclass(frozen=True)
class Calibration:
    """The values bench.faq_calibrate chooses for one encoder (KnowledgeSettings field names)."""

    dense_weight: float
    answer_weight: float
    crowding_weight: float
    answer_score: float
    answer_margin: float
    suggest_score: float


CALIBRATED: Final[dict[str, Calibration]] = {
    # 2026-12-04: demo dev 179/357 answered directly, 177 right; 2 of 60 out-of-domain answered.
    SERVICE_MODEL_DIR.name: Calibration(
        dense_weight=1.0,
        answer_weight=1.5,
        crowding_weight=0.0,
        answer_score=0.622,
        answer_margin=0.0,
        suggest_score=0.480,
    ),
    # 2026-12-06: demo dev 184/357 answered directly, all right; 2 of 60 out-of-domain answered,
    # 27 offered suggestions (hit@1 0.922 against the tuned model's 0.969: the tuning is worth
    # waiting for, the thresholds are not what it adds).
    BASE_MODEL_DIR.name: Calibration(
        dense_weight=0.99,
        answer_weight=1.0,
        crowding_weight=0.25,
        answer_score=0.898,
        answer_margin=0.030,
        suggest_score=0.879,
    ),
}


def calibration_for(model_dir: Path) -> Calibration | None:
    """The calibrated values for the encoder in `model_dir`, or None when it has none."""
    if (found := CALIBRATED.get(model_dir.name)) is not None:
        return found
    # A shop-tuned model's stamp names the model it was tuned from (knowledge.training.tuning).
    try:
        stamp = json.loads((model_dir / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tuned_from = stamp.get("tuned_from") if isinstance(stamp, dict) else None
    return CALIBRATED.get(Path(str(tuned_from)).name) if tuned_from else None


def calibrated(settings: KnowledgeSettings, model_dir: Path) -> KnowledgeSettings:
    """`settings` with `model_dir`'s calibrated values wherever the user did not set one.

    Always pass the settings as the user gave them: the copy returned counts the calibrated
    values as set, so calibrating it again for another model would keep them.
    """
    calibration = calibration_for(model_dir)
    if calibration is None:
        return settings
    chosen = {
        name: value for name, value in asdict(calibration).items() if name not in settings.model_fields_set
    }
    return settings.model_copy(update=chosen)
