"""Whether to answer, suggest or admit not knowing, from the fused scores of the top FAQs.

Zendesk- and Intercom-style deflection only works if a confident answer is right almost
always: a wrong answer costs more than an honest "I don't know" with a person offered. So:

- answer   when the best FAQ scores at least `answer_score` and leads the next FAQ by at
           least `answer_margin` (two close FAQs mean the question is ambiguous);
- suggest  when the best FAQ scores at least `suggest_score`: "您是想问：" with the top three;
- none     otherwise.

The thresholds are calibrated on our own paraphrase and out-of-domain dev questions
(`python -m bench.faq_calibrate`), never on the public evaluation sets.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from knowledge.index import ScoredFaq
from knowledge.types import Decision


@dataclass(frozen=True)
class Thresholds:
    answer_score: float
    answer_margin: float
    suggest_score: float


def decide(ranked: Sequence[ScoredFaq], thresholds: Thresholds) -> Decision:
    if not ranked:
        return "none"
    best = ranked[0].score
    runner_up = ranked[1].score if len(ranked) > 1 else 0.0
    if best >= thresholds.answer_score and best - runner_up >= thresholds.answer_margin:
        return "answer"
    if best >= thresholds.suggest_score:
        return "suggest"
    return "none"
