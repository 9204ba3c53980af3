"""One manager question, asked by chat or on the dashboard: parse it, run it in the asker's scope, answer.

The chat action and the API both call `ask`, so a question gets the same interpretation, the same
figures and the same words wherever it is typed. Parsing needs the store's names (regions,
products, staff …, `crm_store.analytics.vocabulary`); they change rarely and reading them costs a
pass over the customers, so they are kept per database for `VOCABULARY_TTL_S` seconds.

The chart follows the shape of the answer (`chart_kind`): a line over a time dimension, a pie for the
shares of an additive figure over a handful of groups, bars otherwise, none for a single number.
"""

import time
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from sqlalchemy.orm import Session

from crm_store.access import Actor
from crm_store.analytics.query import QueryResult, format_answer, run_query
from crm_store.analytics.spec import TIME_GRAINS, QuerySpec
from crm_store.analytics.vocabulary import Vocabulary, load_vocabulary
from knowledge.manager_query.outcome import Clarify, Parsed, Unsupported
from knowledge.manager_query.parser import parse_question

__all__ = ["VOCABULARY_TTL_S", "Answer", "ChartKind", "ask", "chart_kind", "clear_vocabulary_cache"]

ChartKind = Literal["bar", "line", "pie"]

VOCABULARY_TTL_S: Final = 600.0
# Figures whose parts add up to the whole: only these are shown as shares of a pie.
_ADDITIVE_METRICS: Final = frozenset(
    {"sales", "orders", "customers", "new_customers", "complaints", "pipeline_amount", "weighted_pipeline"}
)
_PIE_MAX_SLICES: Final = 6


@dataclass(frozen=True)
class Answer:
    """What the asker is told: a result with its figures, a clarifying question, or what can be asked."""

    kind: Literal["result", "clarify", "unsupported"]
    text: str
    spec: QuerySpec | None = None
    result: QueryResult | None = None
    chart: ChartKind | None = None
    options: tuple[str, ...] = ()


_vocabularies: dict[str, tuple[float, Vocabulary]] = {}


def clear_vocabulary_cache() -> None:
    """Forget the cached names (e.g. after an import)."""
    _vocabularies.clear()


def _vocabulary(session: Session) -> Vocabulary:
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    cached = _vocabularies.get(key)
    if cached is None or time.monotonic() - cached[0] > VOCABULARY_TTL_S:
        cached = (time.monotonic(), load_vocabulary(session))
        _vocabularies[key] = cached
    return cached[1]


def chart_kind(spec: QuerySpec, result: QueryResult) -> ChartKind | None:
    """The chart that shows this answer best; None for a single number (nothing to draw)."""
    if not spec.group_by or not result.rows:
        return None
    if any(dimension in TIME_GRAINS for dimension in spec.group_by):
        return "line"
    if (
        len(spec.group_by) == 1
        and spec.metric in _ADDITIVE_METRICS
        and 2 <= len(result.rows) <= _PIE_MAX_SLICES
        and spec.top_n is None
    ):
        return "pie"
    return "bar"


def ask(
    session: Session, actor: Actor, question: str, *, today: date, previous: QuerySpec | None = None
) -> Answer:
    """Answer `question` for `actor` as of `today`; `previous` is the last answered spec (follow-ups).

    Raises what `run_query` raises: `Forbidden` for a customer or a question outside the asker's
    scope, `Invalid` for a combination the semantic layer cannot compute.
    """
    outcome = parse_question(
        question, vocabulary=_vocabulary(session), today=today, previous=previous, asker=actor
    )
    if isinstance(outcome, Clarify):
        return Answer("clarify", outcome.question, spec=outcome.partial, options=outcome.options)
    if isinstance(outcome, Unsupported):
        return Answer("unsupported", outcome.reason, options=outcome.examples)
    assert isinstance(outcome, Parsed)
    result = run_query(session, outcome.spec, actor, today=today)
    return Answer(
        "result",
        format_answer(result),
        spec=outcome.spec,
        result=result,
        chart=chart_kind(outcome.spec, result),
    )
