"""The semantic layer's vocabulary: what a manager can ask for, as data.

A question in Chinese ("上个月华东区销售额最高的五个客户") is parsed (`knowledge.manager_query`) into a
`QuerySpec`: one metric, the dimensions to group by, filters on dimension values, a period and an
optional top-N. The spec is then compiled to one read-only, parameterised SQLAlchemy query over the
asker's scope (`crm_store.analytics.query`). Nothing of the user's text reaches SQL except as a
bound parameter value, and only values the spec names: metric and dimension keys are looked up in
`METRICS` and `DIMENSIONS`, never interpolated.

Keys are English identifiers (stable in files, URLs and JSON); labels are what users read.
Periods are closed date ranges: `start` and `end` both belong to the period.

**Counted orders**: sales figures count orders in every status except 待付款, 已取消 and 已退款
(`crm_store.lapse.COUNTED_EXCLUDED_STATUSES`), the same rule as the value tier and the lapse rule.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Final, Literal

from crm_store.errors import Invalid

__all__ = [
    "DIMENSIONS",
    "METRICS",
    "TIME_GRAINS",
    "Dimension",
    "Filter",
    "Metric",
    "Period",
    "QuerySpec",
]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # 元, 单, 位, %, 分 or 件
    description: str


@dataclass(frozen=True)
class Dimension:
    key: str
    label: str
    description: str


METRICS: Final[Mapping[str, Metric]] = {
    metric.key: metric
    for metric in (
        Metric("sales", "销售额", "元", "sum of the amounts of counted orders dated in the period"),
        Metric("orders", "订单数", "单", "number of counted orders dated in the period"),
        Metric("customers", "客户数", "位", "distinct customers with a counted order in the period"),
        Metric("new_customers", "新增客户数", "位", "customers whose customers.created_at is in the period"),
        Metric("avg_order_value", "客单价", "元", "sales / orders of the period"),
        Metric(
            "repeat_rate",
            "复购率",
            "%",
            "share of the customers who bought in the period that placed 2 or more counted orders in it",
        ),
        Metric("complaints", "投诉数", "件", "tickets opened in the period"),
        Metric("avg_csat", "平均满意度", "分", "mean rating (1–5) of the tickets rated in the period"),
        Metric(
            "pipeline_amount",
            "商机金额",
            "元",
            "amounts of open opportunities expected to close in the period (all open ones if no period)",
        ),
        Metric(
            "weighted_pipeline",
            "加权商机金额",
            "元",
            "pipeline_amount with each opportunity weighted by its probability",
        ),
        Metric(
            "lapsed_customers",
            "流失客户数",
            "位",
            "customers lapsed by the one lapse rule (crm_store.lapse) at the period's end",
        ),
    )
}

TIME_GRAINS: Final = ("day", "week", "month", "quarter", "year")

DIMENSIONS: Final[Mapping[str, Dimension]] = {
    dimension.key: dimension
    for dimension in (
        Dimension("customer", "客户", "the customer (id; shown with the name)"),
        Dimension("region", "地区", "customers.region"),
        Dimension("city", "城市", "customers.city"),
        Dimension("product", "产品", "products.name, through order_items (sales: the line amounts)"),
        Dimension("category", "品类", "products.category, through order_items"),
        Dimension("sales_rep", "销售员", "the customer's owner (employees.name)"),
        Dimension("day", "日", "the fact's date"),
        Dimension("week", "周", "the ISO week of the fact's date (Monday first)"),
        Dimension("month", "月", "the month of the fact's date"),
        Dimension("quarter", "季度", "the quarter of the fact's date"),
        Dimension("year", "年", "the year of the fact's date"),
        Dimension("customer_tier", "客户等级", "customer_scores.value_tier: 关键, 普通 or 小客户"),
        Dimension("complaint_category", "投诉类别", "tickets.category"),
        Dimension("opportunity_stage", "商机阶段", "opportunities.stage"),
    )
}


@dataclass(frozen=True)
class Period:
    """A closed range of dates, with the words that name it in answers ("2026年10月", "最近7天")."""

    start: date
    end: date
    label: str

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "label": self.label}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Period":
        return cls(
            start=date.fromisoformat(data["start"]),
            end=date.fromisoformat(data["end"]),
            label=str(data.get("label", "")),
        )


@dataclass(frozen=True)
class Filter:
    """Keep the facts whose `dimension` is one of `values` (e.g. region in 华东, 华南)."""

    dimension: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class QuerySpec:
    """One question: a metric, grouped by dimensions, filtered, over a period, maybe ranked.

    `period` None means all time (pipeline metrics: every open opportunity). `top_n` keeps the
    first N groups in `order` of the metric (desc: the largest first).
    """

    metric: str
    group_by: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    period: Period | None = None
    top_n: int | None = None
    order: Literal["desc", "asc"] = "desc"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise Invalid("unknown_metric", field="metric", value=self.metric)
        for key in (*self.group_by, *(f.dimension for f in self.filters)):
            if key not in DIMENSIONS:
                raise Invalid("unknown_dimension", field="dimension", value=key)
        if self.top_n is not None and self.top_n < 1:
            raise Invalid("top_n_not_positive", field="top_n", value=self.top_n)

    def filter_values(self, dimension: str) -> tuple[str, ...]:
        """The values a filter keeps for `dimension`, () when it is not filtered."""
        for item in self.filters:
            if item.dimension == dimension:
                return item.values
        return ()

    def with_changes(self, **changes: Any) -> "QuerySpec":
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON data: the form of `crmbot query --json` and of the evaluation file."""
        return {
            "metric": self.metric,
            "group_by": list(self.group_by),
            "filters": {f.dimension: list(f.values) for f in self.filters},
            "period": self.period.to_json() if self.period else None,
            "top_n": self.top_n,
            "order": self.order,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "QuerySpec":
        period = data.get("period")
        return cls(
            metric=data["metric"],
            group_by=tuple(data.get("group_by") or ()),
            filters=tuple(
                Filter(dimension, tuple(values)) for dimension, values in (data.get("filters") or {}).items()
            ),
            period=Period.from_json(period) if period else None,
            top_n=data.get("top_n"),
            order=data.get("order", "desc"),
        )
