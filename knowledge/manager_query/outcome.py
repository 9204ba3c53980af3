"""What parsing a question gives: a spec to run, a question back, or a polite "not this"."""

from dataclasses import dataclass

from crm_store.analytics.spec import QuerySpec

__all__ = ["Clarify", "ParseOutcome", "Parsed", "Unsupported"]


@dataclass(frozen=True)
class Parsed:
    """The question understood: run `spec` (its `extra` notes a corrected name or a default period)."""

    spec: QuerySpec


@dataclass(frozen=True)
class Clarify:
    """The question could mean several things: ask `question`, offer `options`.

    Each option, parsed as a follow-up with `previous=partial`, gives the full spec (a metric's
    label, "销售员王丽", "客户张伟（C0001）"). `partial` is what was understood so far (None when
    not even a metric). `code` names the reason for callers: customer_or_staff, same_name_customers,
    similar_names, which_metric, one_metric.
    """

    question: str
    options: tuple[str, ...]
    partial: QuerySpec | None
    code: str = ""


@dataclass(frozen=True)
class Unsupported:
    """Not a question the semantic layer answers: `reason` in Chinese, then `examples` to ask instead.

    `code`: not_a_metrics_question, metric_not_available or record_lookup.
    """

    reason: str
    examples: tuple[str, ...]
    code: str = ""


ParseOutcome = Parsed | Clarify | Unsupported
