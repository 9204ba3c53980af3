"""Questions encoded once and ranked as the product ranks them, for benchmarks that try many
fusion settings on the same questions."""

import numpy as np

from knowledge.encoder import Encoder, Vectors
from knowledge.index import ScoredFaq, Snapshot, rank_question


class EncodedQuestions:
    """Questions encoded once, with their sound-alike readings, ranked as `FaqIndex.rank` does."""

    def __init__(self, snapshot: Snapshot, texts: list[str], encoder: Encoder) -> None:
        self.snapshot = snapshot
        self.texts = texts
        self.vectors = encoder.encode(texts)
        readings = {i: snapshot.homophones.correct(text) for i, text in enumerate(texts)}
        self.readings = {i: reading for i, reading in readings.items() if reading != texts[i]}
        read = list(self.readings)
        read_vectors = encoder.encode([self.readings[i] for i in read])
        self.reading_vectors: dict[int, Vectors] = dict(zip(read, read_vectors, strict=True))

    def rank(
        self, weight: float, answer_weight: float, crowding_weight: float = 0.0
    ) -> list[list[ScoredFaq]]:
        ranked = []
        for i, (text, vector) in enumerate(zip(self.texts, self.vectors, strict=True)):
            reading = (self.readings[i], self.reading_vectors[i]) if i in self.readings else None
            ranked.append(
                rank_question(
                    self.snapshot, (text, vector), reading, 10, weight, answer_weight, crowding_weight
                )
            )
        return ranked


def hit1_and_mrr(ranked: list[list[ScoredFaq]], truth: list[str]) -> tuple[float, float]:
    """hit@1 and MRR (within the top 10)."""
    reciprocal = []
    for hits, faq_id in zip(ranked, truth, strict=True):
        ids = [s.entry.faq_id for s in hits]
        reciprocal.append(1 / (ids.index(faq_id) + 1) if faq_id in ids else 0.0)
    return float(np.mean([r == 1.0 for r in reciprocal])), float(np.mean(reciprocal))
