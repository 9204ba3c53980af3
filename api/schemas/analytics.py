"""Bodies of `/api/analytics`: questions, specs, answers with their table and chart, KPIs, service metrics.

A spec travels as `QuerySpec.to_json()` writes it (crm_store/analytics/spec.py): the evaluation
file, `crmbot query --json`, the chat's dashboard link and these bodies share that one shape.
"""

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class PeriodIO(BaseModel):
    """A closed range of days and the words that name it ("2026年10月")."""

    start: date
    end: date
    label: str = ""


class QuerySpecIO(BaseModel):
    """One question as the semantic layer reads it (metric and dimension keys of spec.py)."""

    metric: str = Field(max_length=32, description="sales, orders, avg_order_value … (METRICS).")
    group_by: list[str] = Field(
        default_factory=list, max_length=4, description="region, month … (DIMENSIONS)."
    )
    filters: dict[str, list[str]] = Field(
        default_factory=dict, description='Canonical values per dimension, e.g. {"region": ["华东"]}.'
    )
    period: PeriodIO | None = None
    top_n: int | None = Field(default=None, ge=1, le=1000)
    order: Literal["desc", "asc"] = "desc"


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=200, description="上个月各地区的销售额")
    previous: QuerySpecIO | None = Field(
        default=None, description='The last answered spec, for follow-ups ("那上上个月呢").'
    )


class QueryIn(BaseModel):
    spec: QuerySpecIO


Cell = str | float | int | None


class ResultOut(BaseModel):
    """A spec's figures: one row per group (dimension labels, then the value) and the total."""

    interpretation: str = Field(description="按地区统计 2026年10月 的销售额")
    metric_label: str
    unit: str = Field(description="元, 单, 位, %, 分 or 件.")
    columns: list[str]
    rows: list[list[Cell]] = Field(description="Labels as people read them, then the value (a number).")
    keys: list[list[str | None]] = Field(description="Each row's canonical dimension values (华东, 2026-10).")
    display_rows: list[list[str]] = Field(description="The rows as the table shows them: values with units.")
    total: float | int | None
    total_text: str


class AnswerOut(BaseModel):
    """A question's answer: figures with a chart kind, a clarifying question, or what can be asked."""

    kind: Literal["result", "clarify", "unsupported"]
    text: str = Field(description="The Chinese answer, as the chat gives it.")
    spec: QuerySpecIO | None
    result: ResultOut | None
    chart: Literal["bar", "line", "pie"] | None = Field(description="None: a single number, nothing to draw.")
    options: list[str] = Field(description="Choices of a clarifying question, or example questions.")


class KpiOut(BaseModel):
    metric: str
    label: str
    unit: str
    current: float | int | None
    previous: float | int | None
    current_text: str
    previous_text: str


class KpisOut(BaseModel):
    """The standing KPIs of the asker's scope, this month so far against last month."""

    current_period: PeriodIO
    previous_period: PeriodIO
    kpis: list[KpiOut]


class ServiceMetricsOut(BaseModel):
    """How the assistant served customers (crm_store/analytics/service_metrics.py has the formulas)."""

    period: PeriodIO
    conversations: int
    conversations_by_channel: dict[str, int] = Field(
        description="Conversations by the channel of their first message (web, socketio, wechat)."
    )
    deflected_conversations: int
    deflection_rate: float | None = Field(description="0–1; None without a conversation.")
    handoff_conversations: int
    handoff_rate: float | None
    user_turns: int
    fallback_turns: int
    fallback_rate: float | None
    csat_ratings: int
    csat_average: float | None = Field(description="1–5.")
    care_sent: int
    care_failed: int
    care_delivery_rate: float | None
