"""The held-out manager questions (bench/data/manager_questions_heldout.jsonl) are a sound test set.

The file measures the parser of managers' questions, so a wrong expected answer there is a defect
that would mark a right parse wrong. These tests check the file on its own, without the parser:
every expected spec loads under the contract (`crm_store.analytics.spec`), every filter value is
a value of the demo company, every period named by a relative word ("上个月", "最近7天", "Q3") is
the period the contract's conventions give at the file's reference day (recomputed here from the
calendar), a question naming no period keeps the previous one or the contract's default, and
the set covers every metric, dimension, kind of time range, top-N, typos, clarifications and
unsupported questions often enough for the per-slot figures to mean something.
"""

import csv
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from functools import cache
from typing import Any

import pytest

from crm_store.analytics.spec import DIMENSIONS, METRICS, TIME_GRAINS, QuerySpec
from crm_store.settings import DEMO_DIR, PROJECT_ROOT
from crm_store.vocab import COMPLAINT_CATEGORIES, OPPORTUNITY_STAGES, VALUE_TIERS

QUESTIONS_FILE = PROJECT_ROOT / "bench" / "data" / "manager_questions_heldout.jsonl"
TODAY = date(2026, 11, 23)
LINE_KEYS = {"question", "today", "as", "previous", "expected"}
SPEC_KEYS = {"metric", "group_by", "filters", "period", "top_n", "order"}
# Metrics over open opportunities or a state at a day: no period said means none (contract conventions).
NO_DEFAULT_PERIOD = {"pipeline_amount", "weighted_pipeline", "lapsed_customers"}

# The minimum coverage the set promises (docs/evaluation-sets.md).
MIN_LINES = 170
MIN_PER_METRIC = 8
MIN_PER_DIMENSION = 5
MIN_PER_PERIOD_KIND = 4
MIN_TOP_N = 15
MIN_TYPOS = 15
MIN_CLARIFY = 10
MIN_UNSUPPORTED = 10
MIN_FOLLOW_UPS = 20

Span = tuple[date, date]

# Words naming a period relative to today, per kind; each kind's span is computed by `_relative_span`.
RELATIVE_WORDS: Mapping[str, tuple[str, ...]] = {
    "今天": ("今天", "今日"),
    "昨天": ("昨天", "昨日"),
    "本周": ("本周", "这周", "这个星期", "这星期"),
    "上周": ("上周", "上个星期", "上星期"),
    "本月": ("本月", "这个月", "这月"),
    "上上个月": ("上上个月",),
    "上个月": ("上个月", "上月"),
    "本季度": ("本季度", "这个季度", "这季度"),
    "上季度": ("上季度", "上个季度", "上一季度"),
    "今年": ("今年",),
    "去年": ("去年",),
}
_WORD_KIND = {word: kind for kind, words in RELATIVE_WORDS.items() for word in words}
# Longest first, so that 上上个月 is read as itself and not as 上个月.
RELATIVE = re.compile("|".join(sorted(_WORD_KIND, key=len, reverse=True)))
RECENT_DAYS = re.compile(r"(?:最近|近|过去)([0-9]+|[一二三四五六七八九十两]+)天")
EXPLICIT_YEAR = re.compile(r"([0-9]{4}|[〇零一二三四五六七八九]{4})年")
EXPLICIT_MONTH = re.compile(r"(?<![0-9])([0-9]{1,2}|十[一二]?|[一二三四五六七八九])月(?![0-9])")
EXPLICIT_QUARTER = re.compile(r"[Qq]([1-4])|第([一二三四1-4])季度")
EXPLICIT_DATE = re.compile(
    r"(?:([0-9]{4})年)?([0-9]{1,2})月([0-9]{1,2})[日号]|([0-9]{4})-([0-9]{2})-([0-9]{2})"
)
# Words that make a period open-ended or a range of two mentions: not checked against one mention.
RANGE_WORDS = ("以来", "至今", "到现在", "到")
CHINESE_DIGITS = {
    "〇": 0,
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}


@cache
def _lines() -> tuple[dict[str, Any], ...]:
    with QUESTIONS_FILE.open(encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())


def _specs() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each line whose expected answer is a query spec, with that spec."""
    for line in _lines():
        expected = line["expected"]
        if "metric" in expected:
            yield line, expected


@cache
def _demo_rows(name: str) -> tuple[dict[str, str], ...]:
    with (DEMO_DIR / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return tuple(csv.DictReader(handle))


@cache
def _demo_values() -> dict[str, frozenset[str]]:
    """The values each filterable dimension takes in the demo company, read from its CSV files."""
    customers = _demo_rows("customers")
    products = _demo_rows("products")
    owners = {row["owner_id"] for row in customers}
    return {
        "customer": frozenset(row["customer_id"] for row in customers),
        "region": frozenset(row["region"] for row in customers),
        "city": frozenset(row["city"] for row in customers),
        "product": frozenset(row["name"] for row in products),
        "category": frozenset(row["category"] for row in products),
        "sales_rep": frozenset(
            row["name"] for row in _demo_rows("employees") if row["employee_id"] in owners
        ),
        "customer_tier": frozenset(VALUE_TIERS),
        "complaint_category": frozenset(COMPLAINT_CATEGORIES),
        "opportunity_stage": frozenset(OPPORTUNITY_STAGES),
    }


def _number(text: str) -> int:
    """A small number in digits or 汉字 (七, 十四, 三十, 九十)."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, units = text.partition("十")
        return CHINESE_DIGITS.get(tens, 1) * 10 + (CHINESE_DIGITS[units] if units else 0)
    return int("".join(str(CHINESE_DIGITS[char]) for char in text))


def _month_start(day: date, months_back: int) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _whole(start: date, next_start: date) -> Span:
    """The span from `start` to the day before `next_start`, cut at today (a current period runs to today)."""
    return start, min(next_start - timedelta(days=1), TODAY)


def _relative_span(kind: str) -> Span:
    monday = TODAY - timedelta(days=TODAY.weekday())
    quarter_start = date(TODAY.year, (TODAY.month - 1) // 3 * 3 + 1, 1)
    spans: dict[str, Span] = {
        "今天": (TODAY, TODAY),
        "昨天": (TODAY - timedelta(days=1), TODAY - timedelta(days=1)),
        "本周": (monday, TODAY),
        "上周": (monday - timedelta(days=7), monday - timedelta(days=1)),
        "本月": (_month_start(TODAY, 0), TODAY),
        "上个月": _whole(_month_start(TODAY, 1), _month_start(TODAY, 0)),
        "上上个月": _whole(_month_start(TODAY, 2), _month_start(TODAY, 1)),
        "本季度": (quarter_start, TODAY),
        "上季度": _whole(_month_start(quarter_start, 3), quarter_start),
        "今年": (date(TODAY.year, 1, 1), TODAY),
        "去年": (date(TODAY.year - 1, 1, 1), date(TODAY.year - 1, 12, 31)),
    }
    return spans[kind]


def _mentions(question: str) -> list[tuple[str, Span]]:
    """Each period the question names, as (kind, the span the conventions give it)."""
    found: list[tuple[str, Span]] = []
    for match in RELATIVE.finditer(question):
        kind = _WORD_KIND[match.group()]
        found.append((kind, _relative_span(kind)))
    for match in RECENT_DAYS.finditer(question):
        days = _number(match.group(1))
        found.append(("最近N天", (TODAY - timedelta(days=days - 1), TODAY)))
    years = [_number(match.group(1)) for match in EXPLICIT_YEAR.finditer(question)]
    year = years[0] if years else TODAY.year
    dates = list(EXPLICIT_DATE.finditer(question))
    for match in dates:
        if match.group(4):
            day = date(int(match.group(4)), int(match.group(5)), int(match.group(6)))
        else:
            day = date(int(match.group(1) or year), int(match.group(2)), int(match.group(3)))
        found.append(("explicit date", (day, day)))
    quarters = list(EXPLICIT_QUARTER.finditer(question))
    for match in quarters:
        number = _number(match.group(1) or match.group(2))
        start = date(year, number * 3 - 2, 1)
        found.append(("explicit quarter", _whole(start, _month_start(date(year, number * 3, 1), -1))))
    months = [] if dates else list(EXPLICIT_MONTH.finditer(question))
    for match in months:
        start = date(year, _number(match.group(1)), 1)
        found.append(("explicit month", _whole(start, _month_start(start, -1))))
    if years and not (dates or quarters or months):
        found.append(("explicit year", _whole(date(year, 1, 1), date(year + 1, 1, 1))))
    return found


def _span(spec: Mapping[str, Any]) -> Span | None:
    period = spec["period"]
    if period is None:
        return None
    return date.fromisoformat(period["start"]), date.fromisoformat(period["end"])


def _typo_of(question: str, name: str) -> bool:
    """Whether `question` writes `name` with one wrong character rather than right.

    The longest part of the name written with exactly one character changed must be longer than
    the longest part written correctly ("扫地鸡器人" for 扫地机器人, "王莉" for 王丽).
    """
    head = name.split(" ")[0]
    right = wrong = 0
    for size in range(1, len(head) + 1):
        for start in range(len(head) - size + 1):
            part = head[start : start + size]
            if part in question:
                right = max(right, size)
            elif size >= 2 and any(
                sum(a != b for a, b in zip(part, question[at : at + size], strict=True)) == 1
                for at in range(len(question) - size + 1)
            ):
                wrong = max(wrong, size)
    return wrong > right


def _has_typo(spec: Mapping[str, Any], question: str) -> bool:
    filters = spec["filters"]
    names = [*filters.get("sales_rep", ()), *filters.get("product", ())]
    return any(_typo_of(question, name) for name in names)


def _normalised(question: str) -> str:
    return re.sub(r"[\s，。？！,.?!、：:]", "", question).lower()


def test_each_line_has_the_documented_shape() -> None:
    employees = {row["employee_id"]: row["role"] for row in _demo_rows("employees")}
    for line in _lines():
        assert set(line) == LINE_KEYS, line
        assert line["today"] == TODAY.isoformat(), line
        assert employees.get(line["as"]) in {"manager", "sales"}, line
        assert isinstance(line["question"], str) and line["question"].strip(), line
        expected = line["expected"]
        assert expected in ({"clarify": True}, {"unsupported": True}) or set(expected) == SPEC_KEYS, line
        if line["previous"] is not None:
            assert set(line["previous"]) == SPEC_KEYS, line


@pytest.mark.parametrize("role", ["expected", "previous"])
def test_each_spec_loads_under_the_contract_and_round_trips(role: str) -> None:
    for line in _lines():
        data = line[role]
        if data is None or "metric" not in data:
            continue
        spec = QuerySpec.from_json(data)
        written = spec.to_json()
        if written["period"] is not None:
            del written["period"]["label"]
        assert written == data, line["question"]
        assert data["order"] in {"desc", "asc"}, line["question"]


def test_filter_values_are_values_of_the_demo_company() -> None:
    values = _demo_values()
    for line in _lines():
        for data in (line["previous"], line["expected"]):
            if data is None or "metric" not in data:
                continue
            for dimension, kept in data["filters"].items():
                assert dimension not in TIME_GRAINS, f"{line['question']}: a time restriction is the period"
                assert kept and len(set(kept)) == len(kept), line["question"]
                assert set(kept) <= values[dimension], f"{line['question']}: {dimension} {kept}"
            assert len(set(data["group_by"])) == len(data["group_by"]), line["question"]


def test_periods_are_closed_ranges_up_to_today() -> None:
    for line in _lines():
        for data in (line["previous"], line["expected"]):
            span = None if data is None or "metric" not in data else _span(data)
            if span is not None:
                assert span[0] <= span[1] <= TODAY, line["question"]


def test_a_named_period_is_the_one_the_conventions_give() -> None:
    """One period named ("上个月", "最近30天", "2025年Q4", "10月8日") → exactly its span."""
    for line, spec in _specs():
        question = line["question"]
        mentions = _mentions(question)
        if len(mentions) == 1 and not any(word in question for word in RANGE_WORDS):
            assert _span(spec) == mentions[0][1], f"{question}: {mentions[0][0]}"


def test_no_period_named_keeps_the_previous_one_or_the_default() -> None:
    """A follow-up keeps its context's period; a fresh flow question means 本月, a pipeline one none."""
    for line, spec in _specs():
        if _mentions(line["question"]):
            continue
        if line["previous"] is not None:
            assert _span(spec) == _span(line["previous"]), line["question"]
        elif spec["metric"] in NO_DEFAULT_PERIOD:
            assert _span(spec) is None, line["question"]
        else:
            assert _span(spec) == _relative_span("本月"), line["question"]


def test_flow_metrics_always_have_a_period() -> None:
    for line, spec in _specs():
        if spec["metric"] not in NO_DEFAULT_PERIOD:
            assert spec["period"] is not None, line["question"]


def test_me_from_a_salesperson_is_their_own_name() -> None:
    names = {row["employee_id"]: row["name"] for row in _demo_rows("employees")}
    roles = {row["employee_id"]: row["role"] for row in _demo_rows("employees")}
    checked = 0
    for line, spec in _specs():
        if roles[line["as"]] == "sales" and "我" in line["question"]:
            assert spec["filters"].get("sales_rep") == [names[line["as"]]], line["question"]
            checked += 1
    assert checked >= 5


def test_ranked_questions_name_an_order_and_rank_groups() -> None:
    for line, spec in _specs():
        if spec["top_n"] is not None:
            assert isinstance(spec["top_n"], int) and spec["top_n"] >= 1, line["question"]
            assert spec["group_by"], f"{line['question']}: a top-N ranks groups"


def test_no_question_is_asked_twice() -> None:
    seen = Counter(_normalised(line["question"]) for line in _lines())
    assert [question for question, times in seen.items() if times > 1] == []


def _count(predicate: Callable[[dict[str, Any]], bool]) -> int:
    return sum(1 for line in _lines() if predicate(line))


def test_the_set_covers_what_it_promises() -> None:
    specs = list(_specs())
    metrics = Counter(spec["metric"] for _, spec in specs)
    dimensions = Counter(
        dimension for _, spec in specs for dimension in {*spec["group_by"], *spec["filters"]}
    )
    kinds = Counter(
        kind for line, spec in specs for kind, span in set(_mentions(line["question"])) if span == _span(spec)
    )
    assert len(_lines()) >= MIN_LINES
    assert {key: metrics[key] for key in METRICS if metrics[key] < MIN_PER_METRIC} == {}
    assert {key: dimensions[key] for key in DIMENSIONS if dimensions[key] < MIN_PER_DIMENSION} == {}
    period_kinds = [
        *RELATIVE_WORDS,
        "最近N天",
        "explicit year",
        "explicit quarter",
        "explicit month",
        "explicit date",
    ]
    assert {kind: kinds[kind] for kind in period_kinds if kinds[kind] < MIN_PER_PERIOD_KIND} == {}
    assert sum(1 for _, spec in specs if spec["top_n"] is not None) >= MIN_TOP_N
    assert sum(1 for line, spec in specs if _has_typo(spec, line["question"])) >= MIN_TYPOS
    assert _count(lambda line: line["expected"] == {"clarify": True}) >= MIN_CLARIFY
    assert _count(lambda line: line["expected"] == {"unsupported": True}) >= MIN_UNSUPPORTED
    assert _count(lambda line: line["previous"] is not None) >= MIN_FOLLOW_UPS


@pytest.mark.parametrize(
    ("question", "name", "typo"),
    [
        ("扫地鸡器人上个月卖了多少钱", "扫地机器人 S7", True),
        ("王莉今年新增客户数", "王丽", True),
        ("扫地机器人S7今年卖了多少钱", "扫地机器人 S7", False),
        ("王丽手上的商机金额", "王丽", False),
    ],
)
def test_the_typo_count_tells_a_misspelt_name_from_a_right_one(question: str, name: str, typo: bool) -> None:
    assert _typo_of(question, name) is typo
