"""Managers' questions in Chinese → the semantic layer's `QuerySpec` (issue 18, deliverable 3).

    outcome = parse_question("上个月华东区销售额最高的五个客户", vocabulary=load_vocabulary(session),
                             today=date(2026, 11, 23))

gives `Parsed(spec)`, `Clarify(question, options, partial)` or `Unsupported(reason, examples)`.
Rules and jieba over dictionaries generated from the store (crm_store.analytics.vocabulary); no
language model, nothing downloaded. docs/analytics.md ("经营问答的理解") describes the rules.
"""

from crm_store.analytics.vocabulary import Vocabulary, load_vocabulary
from knowledge.manager_query.outcome import Clarify, Parsed, ParseOutcome, Unsupported
from knowledge.manager_query.parser import parse_question

__all__ = [
    "Clarify",
    "ParseOutcome",
    "Parsed",
    "Unsupported",
    "Vocabulary",
    "load_vocabulary",
    "parse_question",
]
