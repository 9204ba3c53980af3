"""FAQ sets the knowledge benchmarks share: the demo company's FAQs and our paraphrase files."""

import csv
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

from crmbot.paths import demo_fixture_dir
from knowledge.evaluation import EvalQuery
from knowledge.types import FaqEntry

BENCH_DATA = Path(__file__).resolve().parent / "data"
DEV_PARAPHRASES = BENCH_DATA / "faq_dev_paraphrases.json"
# A second set for the demo FAQs, written later by another helper in a more colloquial mix:
# keyword queries, stories before the question, pinyin typos, a product named in a policy question.
SECOND_DEV_PARAPHRASES = BENCH_DATA / "faq_dev_demo_second.json"
# Ours, in the format of the public FAQ sets (docs/evaluation-sets.md). The six sets below keep
# the queries of half their FAQs; the other half's train the encoder (knowledge/data/paraphrase_corpus.json).
# 400 FAQs in four domains, paraphrases that avoid the FAQ's words.
GENERAL_DEV = BENCH_DATA / "faq_dev_general.json"
# 300 FAQs, paraphrases that are mostly small edits, like real user traffic.
USER_TRAFFIC_DEV = BENCH_DATA / "faq_dev_usertraffic.json"
# Near-duplicate FAQs (one product, action or condition apart) and noisy real-traffic queries.
REAL_TRAFFIC_DEV = BENCH_DATA / "faq_dev_realtraffic.json"
# Three more, each 300 FAQs written by a helper that never saw the public sets: a phone assistant
# and chit-chat, consumer-finance customer service, Q&A-community questions; near-duplicate FAQs.
ASSISTANT_CHAT_DEV = BENCH_DATA / "faq_dev_assistant_chat.json"
FINANCE_DEV = BENCH_DATA / "faq_dev_finance_cs.json"
EVERYDAY_QA_DEV = BENCH_DATA / "faq_dev_everyday_qa.json"
# The dev halves beside the demo paraphrases, with the names the benchmark tables use.
CORPUS_DEV_SETS = {
    "general": GENERAL_DEV,
    "user traffic": USER_TRAFFIC_DEV,
    "real traffic": REAL_TRAFFIC_DEV,
    "assistant chat": ASSISTANT_CHAT_DEV,
    "finance": FINANCE_DEV,
    "everyday Q&A": EVERYDAY_QA_DEV,
}
# LCQMC and OPPO are for research use only, so they are not shipped: docs/evaluation-sets.md says
# where to get them and how to place them here (git ignores the folder).
PUBLIC_FAQ_EVAL = BENCH_DATA / "public" / "faq"


@dataclass(frozen=True)
class ParaphraseSet:
    """In-domain questions with their FAQ, and questions no FAQ answers."""

    queries: list[tuple[str, str]]
    out_of_domain: list[str]


def demo_faqs() -> list[FaqEntry]:
    """The demo company's FAQs, read from faqs.csv as the importer would store them."""
    with (demo_fixture_dir() / "faqs.csv").open(encoding="utf-8", newline="") as handle:
        return [
            FaqEntry(
                faq_id=row["faq_id"],
                question=row["question"],
                answer=row["answer"],
                alt_questions=tuple(a.strip() for a in (row["alt_questions"] or "").split("|") if a.strip()),
                category=row["category"] or None,
            )
            for row in csv.DictReader(handle)
        ]


def paraphrase_set(path: Path = DEV_PARAPHRASES) -> ParaphraseSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    return ParaphraseSet(
        queries=[(q["query"], q["faq_id"]) for q in data["queries"]],
        out_of_domain=list(data["out_of_domain"]),
    )


def demo_dev_set() -> ParaphraseSet:
    """Both dev sets of the demo FAQs together: what the weights and thresholds are chosen on."""
    first, second = paraphrase_set(DEV_PARAPHRASES), paraphrase_set(SECOND_DEV_PARAPHRASES)
    return ParaphraseSet(first.queries + second.queries, first.out_of_domain + second.out_of_domain)


def customer_worded(faqs: list[FaqEntry], queries: list[EvalQuery]) -> tuple[list[FaqEntry], list[EvalQuery]]:
    """The same set as if its FAQs had been written from customers' questions, as staff write them
    from the unanswered queue and as public question-matching sets are built: every FAQ with two
    or more questions takes one of them (a seeded choice) as its text, and that one is no longer
    asked. FAQs with fewer keep their text and stay in the bank."""
    asked: dict[str, list[str]] = {}
    for query in queries:
        asked.setdefault(query.faq_id, []).append(query.query)
    chooser = random.Random(3)
    worded = {faq.faq_id: faq for faq in faqs}
    remaining: list[EvalQuery] = []
    for faq_id, texts in asked.items():
        if len(texts) < 2:
            remaining += [EvalQuery(text, faq_id) for text in texts]
            continue
        texts = texts[:]
        chooser.shuffle(texts)
        worded[faq_id] = replace(worded[faq_id], question=texts[0])
        remaining += [EvalQuery(text, faq_id) for text in texts[1:]]
    return list(worded.values()), remaining
