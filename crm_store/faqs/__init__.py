"""The FAQ knowledge base as staff curate it: FAQs, questions the assistant could not answer, feedback.

FAQs are written only through the functions here (or the CSV importer). Each write sets the FAQ's
`updated_at`, raises the knowledge revision (`faq_revision`, see `crm_store.revisions`) and adds an
audit row, all in the caller's transaction: every function flushes, the caller commits. The
retrieval engine in `knowledge/` reads FAQs through `list_faqs` and follows `faq_revision`.

The loop that grows the knowledge base: the assistant records what it could not answer
(`record_unanswered`); staff see the most asked first (`list_unanswered`) and turn one into a new
FAQ or an extra phrasing of an existing one with a single call (`resolve_unanswered`), or dismiss
it. Customers rate answers (`record_feedback`); `feedback_summary` gives the helpful rate that
measures deflection. `paraphrase_pairs` hands the phrasings to encoder tuning.

One module per job, all re-exported here (import from `crm_store.faqs`):

| module           | what                                                              |
|------------------|-------------------------------------------------------------------|
| `_catalogue`     | list, read, create, update and delete FAQs                        |
| `_importing`     | `load_faq_file`: a CSV or JSON file of FAQs                       |
| `_unanswered`    | the queue of unanswered questions and its resolution              |
| `_feedback`      | customers' votes and the helpful rate                             |
| `_paraphrases`   | the phrasings encoder tuning learns from                          |

The rules a FAQ must keep (lengths, id pattern, phrasings) are in `crm_store.faq_rules`, shared
with the CSV importer. A refusal raises a `crm_store.errors` class with a code and plain data,
never a sentence: `NotFound` (`faq_not_found`, `unanswered_not_found`), `Conflict` (e.g.
`faq_id_taken`, `unanswered_already_resolved`) and `Invalid` (a rule's code, with the offending
`field`); each function's docstring lists its codes. The API words them in `api/errors.py`, an
import report in `crm_store.importer.FAQ_REASONS`.
"""

from crm_store.faq_rules import ALT_QUESTIONS_MAX, ANSWER_MAX_CHARS, CATEGORY_MAX_CHARS, QUESTION_MAX_CHARS
from crm_store.faqs._catalogue import create_faq, delete_faq, get_faq, list_faqs, update_faq
from crm_store.faqs._feedback import FaqFeedbackStats, FeedbackSummary, feedback_summary, record_feedback
from crm_store.faqs._importing import FaqImportProblem, FaqImportReport, load_faq_file
from crm_store.faqs._paraphrases import paraphrase_pairs
from crm_store.faqs._unanswered import (
    UNANSWERED_LIST_MAX,
    UNANSWERED_MAX_CHARS,
    dismiss_unanswered,
    list_unanswered,
    question_key,
    record_unanswered,
    resolve_unanswered,
)
from crm_store.revisions import faq_revision

__all__ = [
    "ALT_QUESTIONS_MAX",
    "ANSWER_MAX_CHARS",
    "CATEGORY_MAX_CHARS",
    "QUESTION_MAX_CHARS",
    "UNANSWERED_LIST_MAX",
    "UNANSWERED_MAX_CHARS",
    "FaqFeedbackStats",
    "FaqImportProblem",
    "FaqImportReport",
    "FeedbackSummary",
    "create_faq",
    "delete_faq",
    "dismiss_unanswered",
    "faq_revision",
    "feedback_summary",
    "get_faq",
    "list_faqs",
    "list_unanswered",
    "load_faq_file",
    "paraphrase_pairs",
    "question_key",
    "record_feedback",
    "record_unanswered",
    "resolve_unanswered",
    "update_faq",
]
