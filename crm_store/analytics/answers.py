"""How the semantic layer words its answers, in Chinese: every sentence and label in one place.

`crm_store.analytics.query` builds an interpretation ("按地区统计 2026年10月 的销售额") and a
short answer with a small table from these templates; a refusal (a `CrmError` of the query) is
worded by `refusal_text`. The values themselves are written by `value_text` (¥12,345.00, 12 单,
35.0%, 4.25 分) and `key_text` (a time bucket as 2026年10月). Nothing here reads the store.
"""

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Final

from crm_store.analytics.spec import DIMENSIONS, METRICS
from crm_store.errors import CrmError

__all__ = [
    "FILTER_TEMPLATES",
    "MISSING_LABELS",
    "NO_DATA",
    "PERIOD_NONE",
    "REFUSALS",
    "interpretation_text",
    "key_text",
    "refusal_text",
    "table_text",
    "value_text",
]

GROUPED: Final = "按{dimensions}统计 {period}{filters} 的{metric}{ranking}"
UNGROUPED: Final = "{period}{filters} 的{metric}"
RANKING: Final = {"desc": "（最高的{n}个）", "asc": "（最低的{n}个）"}
PERIOD_NONE: Final[Mapping[str, str]] = {
    "pipeline_amount": "所有进行中",
    "weighted_pipeline": "所有进行中",
    "lapsed_customers": "截至{today}",
}
"""What an answer says for "no period": open opportunities, lapse as of today, else all time."""
PERIOD_ALL_TIME: Final = "全部时间"
PERIOD_AS_OF: Final = "截至{day}"
PERIOD_RANGE: Final = "{start}至{end}"

FILTER_TEMPLATES: Final[Mapping[str, str]] = {
    "customer": "客户{values}",
    "region": "{values}地区",
    "city": "{values}",
    "product": "产品「{values}」",
    "category": "{values}品类",
    "sales_rep": "{values}名下客户",
    "customer_tier": "{values}客户",
    "complaint_category": "{values}类",
    "opportunity_stage": "{values}阶段",
    "day": "{values}",
    "week": "{values}",
    "month": "{values}",
    "quarter": "{values}",
    "year": "{values}",
}
"""How a filter reads inside an interpretation: 华东地区, 王丽名下客户, 关键客户."""
VALUE_SEPARATOR: Final = "、"

MISSING_LABELS: Final[Mapping[str, str]] = {
    "customer": "（无客户）",
    "region": "未填地区",
    "city": "未填城市",
    "product": "未知产品",
    "category": "未分类",
    "sales_rep": "未分配",
    "customer_tier": "未评级",
    "complaint_category": "未分类",
    "opportunity_stage": "未知阶段",
}
"""A group whose dimension value is empty (a customer without an owner, not yet scored …)."""
CUSTOMER_LABEL: Final = "{name}（{customer_id}）"

ANSWER_TOTAL: Final = "{interpretation}：{total}。"
ANSWER_GROUPED: Final = "{interpretation}，合计 {total}："
ANSWER_RANKED: Final = "{interpretation}："
NO_DATA: Final = "{interpretation}：暂无数据。"
MORE_ROWS: Final = "（另有 {count} 项未列出）"
NO_VALUE: Final = "—"
COLUMN_SEPARATOR: Final = " | "

UNIT_FORMATS: Final[Mapping[str, str]] = {
    "元": "¥{value:,.2f}",
    "单": "{value:,} 单",
    "位": "{value:,} 位",
    "件": "{value:,} 件",
    "%": "{value:.1f}%",
    "分": "{value:.2f} 分",
}

KEY_FORMATS: Final[Mapping[str, str]] = {
    "day": "{year}年{month}月{day}日",
    "week": "{year}年第{week}周",
    "month": "{year}年{month}月",
    "quarter": "{year}年第{quarter}季度",
    "year": "{year}年",
}

REFUSALS: Final[Mapping[str, str]] = {
    "staff_only": "抱歉，经营数据只对公司员工开放。",
    "out_of_scope": "抱歉，{dimension}「{value}」不在您的查看范围内，无法提供相关数据。",
    "out_of_scope_unnamed": "抱歉，您问到的{dimension}不在您的查看范围内，无法提供相关数据。",
    "customer_not_found": "抱歉，没有找到客户 {customer_id}，或该客户不在您的查看范围内。",
    "unsupported_combination": "抱歉，{metric}暂不支持按{dimension}统计或筛选。",
    "bad_time_value": "抱歉，没能看懂时间「{value}」。",
    "unknown_metric": "抱歉，暂不支持这个指标。",
    "unknown_dimension": "抱歉，暂不支持这个统计维度。",
}
REFUSAL_DEFAULT: Final = "抱歉，这个问题暂时无法回答。"


def _cn_day(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def period_text(metric: str, period: tuple[date, date, str] | None, *, today: date) -> str:
    """The period as an answer names it: its label, else its dates; no period per `PERIOD_NONE`."""
    if period is None:
        return PERIOD_NONE.get(metric, PERIOD_ALL_TIME).format(today=_cn_day(today))
    start, end, label = period
    if label:
        return label
    if start == end:
        return _cn_day(start)
    return PERIOD_RANGE.format(start=_cn_day(start), end=_cn_day(end))


def interpretation_text(
    *,
    metric: str,
    group_by: Sequence[str],
    filters: Sequence[tuple[str, Sequence[str]]],
    period: str,
    top_n: int | None,
    order: str,
) -> str:
    """ "按地区统计 2026年10月 华东地区 的销售额（最高的5个）": what was computed, in one phrase."""
    shown = "".join(
        " " + FILTER_TEMPLATES[dimension].format(values=VALUE_SEPARATOR.join(values))
        for dimension, values in filters
    )
    fields: dict[str, Any] = {"period": period, "filters": shown, "metric": METRICS[metric].label}
    if not group_by:
        return UNGROUPED.format(**fields).strip()
    ranking = RANKING[order].format(n=top_n) if top_n is not None else ""
    dimensions = VALUE_SEPARATOR.join(DIMENSIONS[key].label for key in group_by)
    return GROUPED.format(dimensions=dimensions, ranking=ranking, **fields).replace("  ", " ")


def value_text(metric: str, value: Decimal | int | float | None) -> str:
    """A metric's value with its unit: ¥12,345.00, 12 单, 33.3%, 4.25 分; — when there is none."""
    if value is None:
        return NO_VALUE
    return UNIT_FORMATS[METRICS[metric].unit].format(value=value)


def key_text(dimension: str, value: Any) -> str:
    """A group's value as an answer shows it: time buckets in Chinese (2026-10 → 2026年10月)."""
    if value is None:
        return MISSING_LABELS.get(dimension, NO_VALUE)
    text = str(value)
    template = KEY_FORMATS.get(dimension)
    if template is None:
        return text
    if dimension == "week":
        year, week = text.split("-W")
        return template.format(year=year, week=int(week))
    if dimension == "quarter":
        year, quarter = text.split("-Q")
        return template.format(year=year, quarter=int(quarter))
    parts = [int(part) for part in text.split("-")]
    names = ("year", "month", "day")
    return template.format(**dict(zip(names, parts, strict=False)))


def table_text(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A small text table: a header line and one line per row, cells separated by " | "."""
    return "\n".join(COLUMN_SEPARATOR.join(cells) for cells in (columns, *rows))


def refusal_text(error: CrmError) -> str:
    """A query's refusal as the asker reads it (no figures): out of scope, unsupported, not staff."""
    data = dict(error.data)
    code = f"{error.code}_unnamed" if error.code == "out_of_scope" and "value" not in data else error.code
    template = REFUSALS.get(code, REFUSAL_DEFAULT)
    if "metric" in data and data["metric"] in METRICS:
        data["metric"] = METRICS[data["metric"]].label
    if "dimension" in data and data["dimension"] in DIMENSIONS:
        data["dimension"] = DIMENSIONS[data["dimension"]].label
    try:
        return template.format(**data)
    except (KeyError, IndexError):
        return REFUSAL_DEFAULT
