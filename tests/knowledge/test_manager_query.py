"""Managers' questions → QuerySpec: the parser's development set, on the demo company's names.

Each case is a question as a manager might type it and the spec a person writes for it by the
contract (crm_store/analytics/spec.py and the common conventions): today is 2026-11-23, a Monday;
no period said means 本月 for flow metrics and none for pipeline metrics and lapsed customers.
The held-out evaluation file is another helper's and is never read here.
"""

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from crm_store.access import Actor
from crm_store.analytics.spec import QuerySpec
from crm_store.analytics.vocabulary import Vocabulary, load_vocabulary
from crm_store.db import create_engine_for, make_session_factory, migrate
from crm_store.importer import import_csv_dir
from crm_store.settings import DEMO_DIR
from knowledge.manager_query import Clarify, Parsed, Unsupported, parse_question
from knowledge.manager_query.texts import render, templates

TODAY = date(2026, 11, 23)
THIS_MONTH = ("2026-11-01", "2026-11-23")
LAST_MONTH = ("2026-10-01", "2026-10-31")
WANG_LI = Actor(role="sales", employee_id="E02", name="王丽", region="华东")
CHEN = Actor(role="manager", employee_id="E01", name="陈思远", region="华东")


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vocabulary]:
    """The demo company's names, read from a scratch store as the CLI reads them."""
    path: Path = tmp_path_factory.mktemp("vocabulary") / "crm.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        migrate(engine)
        report = import_csv_dir(make_session_factory(engine), DEMO_DIR)
        assert report.ok
        with make_session_factory(engine)() as session:
            yield load_vocabulary(session)
    finally:
        engine.dispose()


def _spec(
    metric: str,
    group_by: tuple[str, ...] = (),
    filters: dict[str, tuple[str, ...]] | None = None,
    period: tuple[str, str] | None = THIS_MONTH,
    top_n: int | None = None,
    order: str = "desc",
) -> dict[str, Any]:
    return {
        "metric": metric,
        "group_by": set(group_by),
        "filters": {k: set(v) for k, v in (filters or {}).items()},
        "period": period,
        "top_n": top_n,
        "order": order,
    }


def _slots(spec: QuerySpec) -> dict[str, Any]:
    data = spec.to_json()
    return {
        "metric": data["metric"],
        "group_by": set(data["group_by"]),
        "filters": {k: set(v) for k, v in data["filters"].items()},
        "period": (data["period"]["start"], data["period"]["end"]) if data["period"] else None,
        "top_n": data["top_n"],
        "order": data["order"],
    }


CASES: list[tuple[str, dict[str, Any]]] = [
    # The issue's own example and its neighbours
    ("上个月华东区销售额最高的五个客户", _spec("sales", ("customer",), {"region": ("华东",)}, LAST_MONTH, 5)),
    (
        "上个月华东地区卖得最多的5个客户是谁",
        _spec("sales", ("customer",), {"region": ("华东",)}, LAST_MONTH, 5),
    ),
    ("本月华东区的销售额", _spec("sales", (), {"region": ("华东",)})),
    ("华东这个月营业额多少", _spec("sales", (), {"region": ("华东",)})),
    ("这个月卖了多少钱", _spec("sales")),
    ("本月业绩", _spec("sales")),
    ("今天的销售额", _spec("sales", period=("2026-11-23", "2026-11-23"))),
    ("昨天成交额是多少", _spec("sales", period=("2026-11-22", "2026-11-22"))),
    ("本周订单数", _spec("orders", period=("2026-11-23", "2026-11-23"))),
    ("上周一共多少单", _spec("orders", period=("2026-11-16", "2026-11-22"))),
    ("上上个月的单量", _spec("orders", period=("2026-09-01", "2026-09-30"))),
    ("本季度销售额", _spec("sales", period=("2026-10-01", "2026-11-23"))),
    ("上季度的营收", _spec("sales", period=("2026-07-01", "2026-09-30"))),
    ("今年的销售总额", _spec("sales", period=("2026-01-01", "2026-11-23"))),
    ("去年全年卖了多少", _spec("sales", period=("2025-01-01", "2025-12-31"))),
    ("最近7天的订单量", _spec("orders", period=("2026-11-17", "2026-11-23"))),
    ("近三十天的销售额", _spec("sales", period=("2026-10-25", "2026-11-23"))),
    ("过去90天新增了多少客户", _spec("new_customers", period=("2026-08-26", "2026-11-23"))),
    ("2025年的销售额", _spec("sales", period=("2025-01-01", "2025-12-31"))),
    ("10月份的订单数", _spec("orders", period=LAST_MONTH)),
    ("2026年10月各地区销售额", _spec("sales", ("region",), period=LAST_MONTH)),
    ("Q3的销售额", _spec("sales", period=("2026-07-01", "2026-09-30"))),
    ("三季度各品类的销售额", _spec("sales", ("category",), period=("2026-07-01", "2026-09-30"))),
    ("2025年第4季度的客单价", _spec("avg_order_value", period=("2025-10-01", "2025-12-31"))),
    ("11月1日到11月15日的销售额", _spec("sales", period=("2026-11-01", "2026-11-15"))),
    ("11月1号至15号一共有多少订单", _spec("orders", period=("2026-11-01", "2026-11-15"))),
    ("12月的销售额", _spec("sales", period=("2025-12-01", "2025-12-31"))),
    # Grouping
    ("本月各地区的订单数", _spec("orders", ("region",))),
    ("按地区看一下这个月的销售额", _spec("sales", ("region",))),
    ("分产品统计上个月的销售额", _spec("sales", ("product",), period=LAST_MONTH)),
    ("每个城市的客户数", _spec("customers", ("city",))),
    ("今年每个月的销售额", _spec("sales", ("month",), period=("2026-01-01", "2026-11-23"))),
    ("今年每季度订单量", _spec("orders", ("quarter",), period=("2026-01-01", "2026-11-23"))),
    ("最近30天每天的订单数", _spec("orders", ("day",), period=("2026-10-25", "2026-11-23"))),
    ("本季度每周的销售额", _spec("sales", ("week",), period=("2026-10-01", "2026-11-23"))),
    ("今年销售额的月度趋势", _spec("sales", ("month",), period=("2026-01-01", "2026-11-23"))),
    ("本月销售趋势", _spec("sales", ("day",))),
    ("销售员业绩排名", _spec("sales", ("sales_rep",))),
    ("哪个销售这个月业绩最好", _spec("sales", ("sales_rep",))),
    ("谁的业绩最差", _spec("sales", ("sales_rep",), order="asc")),
    ("各品类销售额占比", _spec("sales", ("category",))),
    ("不同客户等级的销售额", _spec("sales", ("customer_tier",))),
    ("按客户等级统计复购率", _spec("repeat_rate", ("customer_tier",))),
    ("各城市客单价对比", _spec("avg_order_value", ("city",))),
    ("上个月投诉按类别分布", _spec("complaints", ("complaint_category",), period=LAST_MONTH)),
    ("各类投诉的数量", _spec("complaints", ("complaint_category",))),
    ("各阶段的商机金额", _spec("pipeline_amount", ("opportunity_stage",), period=None)),
    ("每个销售的加权商机金额", _spec("weighted_pipeline", ("sales_rep",), period=None)),
    ("华东各城市的销售额", _spec("sales", ("city",), {"region": ("华东",)})),
    ("按地区和品类看本月销售额", _spec("sales", ("region", "category"))),
    ("哪个城市的客户最多", _spec("customers", ("city",))),
    # Top-N and order
    ("本月销售额前十的客户", _spec("sales", ("customer",), top_n=10)),
    ("top 3 产品", _spec("sales", ("product",), top_n=3)),
    ("今年销量最好的三个产品", _spec("sales", ("product",), period=("2026-01-01", "2026-11-23"), top_n=3)),
    ("上个月卖得最差的两个产品", _spec("sales", ("product",), period=LAST_MONTH, top_n=2, order="asc")),
    ("订单数最少的三个城市", _spec("orders", ("city",), top_n=3, order="asc")),
    ("今年十大客户", _spec("sales", ("customer",), period=("2026-01-01", "2026-11-23"), top_n=10)),
    ("哪些客户买得最多", _spec("sales", ("customer",))),
    ("哪个产品卖得最好", _spec("sales", ("product",))),
    ("最近30天哪个产品卖得最好", _spec("sales", ("product",), period=("2026-10-25", "2026-11-23"))),
    ("客户销售额排名前五", _spec("sales", ("customer",), top_n=5)),
    ("倒数三名的销售员", _spec("sales", ("sales_rep",), top_n=3, order="asc")),
    # Filters on every kind of value
    ("上海本月的订单数", _spec("orders", (), {"city": ("上海",)})),
    ("北京市上个月的销售额", _spec("sales", (), {"city": ("北京",)}, LAST_MONTH)),
    ("华南区和西南区的销售额", _spec("sales", (), {"region": ("华南", "西南")})),
    ("Air3上个月卖了多少", _spec("sales", (), {"product": ("无线蓝牙耳机 Air3",)}, LAST_MONTH)),
    ("耳机本月的销售额", _spec("sales", (), {"product": ("无线蓝牙耳机 Air3", "降噪头戴耳机 Pro")})),
    (
        "扫地机器人今年卖了多少单",
        _spec("orders", (), {"product": ("扫地机器人 S7",)}, ("2026-01-01", "2026-11-23")),
    ),
    ("空气净化器的订单数", _spec("orders", (), {"product": ("家用空气净化器 X1",)})),
    ("家电类本季度销售额", _spec("sales", (), {"category": ("家电",)}, ("2026-10-01", "2026-11-23"))),
    ("数码配件上个月的客单价", _spec("avg_order_value", (), {"category": ("数码配件",)}, LAST_MONTH)),
    ("食品品类哪个产品卖得最好", _spec("sales", ("product",), {"category": ("食品",)})),
    ("王丽本季度的业绩", _spec("sales", (), {"sales_rep": ("王丽",)}, ("2026-10-01", "2026-11-23"))),
    ("刘洋负责的客户上个月下了多少单", _spec("orders", (), {"sales_rep": ("刘洋",)}, LAST_MONTH)),
    ("赵敏的客户里谁买得最多", _spec("sales", ("customer",), {"sales_rep": ("赵敏",)})),
    ("关键客户本月的销售额", _spec("sales", (), {"customer_tier": ("关键",)})),
    ("A类客户的复购率", _spec("repeat_rate", (), {"customer_tier": ("关键",)})),
    ("小客户今年的订单数", _spec("orders", (), {"customer_tier": ("小客户",)}, ("2026-01-01", "2026-11-23"))),
    ("报价阶段的商机金额", _spec("pipeline_amount", (), {"opportunity_stage": ("报价",)}, None)),
    ("谈判中的商机有多少钱", _spec("pipeline_amount", (), {"opportunity_stage": ("谈判",)}, None)),
    ("物流配送类投诉有多少", _spec("complaints", (), {"complaint_category": ("物流配送",)})),
    (
        "今年质量问题的投诉数",
        _spec("complaints", (), {"complaint_category": ("产品质量",)}, ("2026-01-01", "2026-11-23")),
    ),
    ("张伟今年买了多少钱", _spec("sales", (), {"customer": ("C0001",)}, ("2026-01-01", "2026-11-23"))),
    ("C0003今年的订单数", _spec("orders", (), {"customer": ("C0003",)}, ("2026-01-01", "2026-11-23"))),
    (
        "华峰科技今年的销售额",
        _spec("sales", (), {"customer": ("C0003", "C0028")}, ("2026-01-01", "2026-11-23")),
    ),
    # Typos of names
    ("陈思源的业绩", _spec("sales", (), {"sales_rep": ("陈思远",)})),
    ("刘阳这个月卖了多少", _spec("sales", (), {"sales_rep": ("刘洋",)})),
    ("赵民负责的客户本月订单数", _spec("orders", (), {"sales_rep": ("赵敏",)})),
    ("孙洁上个月的销售额", _spec("sales", (), {"sales_rep": ("孙杰",)}, LAST_MONTH)),
    # Other metrics, colloquial
    ("这个月新客户有多少", _spec("new_customers")),
    ("本月拉新了多少", _spec("new_customers")),
    ("上个月有多少客户下单", _spec("customers", period=LAST_MONTH)),
    ("本月平均每单多少钱", _spec("avg_order_value")),
    ("复购率", _spec("repeat_rate")),
    ("今年回头客比例", _spec("repeat_rate", period=("2026-01-01", "2026-11-23"))),
    ("本月的投诉量", _spec("complaints")),
    ("上个月客户满意度怎么样", _spec("avg_csat", period=LAST_MONTH)),
    ("去年平均评分", _spec("avg_csat", period=("2025-01-01", "2025-12-31"))),
    ("现在的商机总额", _spec("pipeline_amount", period=None)),
    ("加权商机金额是多少", _spec("weighted_pipeline", period=None)),
    ("现在有多少流失客户", _spec("lapsed_customers", period=None)),
    ("华东流失了多少客户", _spec("lapsed_customers", (), {"region": ("华东",)}, None)),
    ("累计销售额", _spec("sales", period=None)),
    # Wordings found while trying the parser by hand
    ("近7天的日销售额", _spec("sales", ("day",), period=("2026-11-17", "2026-11-23"))),
    ("上海和北京上个月的订单数对比", _spec("orders", ("city",), {"city": ("上海", "北京")}, LAST_MONTH)),
    ("各等级客户的数量", _spec("customers", ("customer_tier",))),
    ("帮我看下今年各月订单量走势", _spec("orders", ("month",), period=("2026-01-01", "2026-11-23"))),
    ("这季度哪个区卖得最好", _spec("sales", ("region",), period=("2026-10-01", "2026-11-23"))),
    ("上个月投诉最多的客户", _spec("complaints", ("customer",), period=LAST_MONTH)),
    ("2026年1月到3月的销售额", _spec("sales", period=("2026-01-01", "2026-03-31"))),
    ("目前各销售的商机金额", _spec("pipeline_amount", ("sales_rep",), period=None)),
]


@pytest.mark.parametrize(("question", "expected"), CASES, ids=[q for q, _ in CASES])
def test_a_question_becomes_the_spec_a_person_would_write(
    question: str, expected: dict[str, Any], vocabulary: Vocabulary
) -> None:
    outcome = parse_question(question, vocabulary=vocabulary, today=TODAY, asker=CHEN)
    assert isinstance(outcome, Parsed), outcome
    assert _slots(outcome.spec) == expected


def test_my_customers_from_a_salesperson_are_her_own(vocabulary: Vocabulary) -> None:
    for question in ("我的客户本月的销售额", "我这个月卖了多少"):
        outcome = parse_question(question, vocabulary=vocabulary, today=TODAY, asker=WANG_LI)
        assert isinstance(outcome, Parsed)
        assert outcome.spec.filter_values("sales_rep") == ("王丽",)
    # "帮我看下" is a request, not "my": no filter (the scope restricts her figures anyway).
    outcome = parse_question("帮我看下本月的销售额", vocabulary=vocabulary, today=TODAY, asker=WANG_LI)
    assert isinstance(outcome, Parsed) and outcome.spec.filters == ()


def test_a_typo_is_reported_with_the_name_it_was_read_as(vocabulary: Vocabulary) -> None:
    outcome = parse_question("陈思源的业绩", vocabulary=vocabulary, today=TODAY)
    assert isinstance(outcome, Parsed)
    assert outcome.spec.extra["corrected"] == {"陈思源": "陈思远"}


def test_periods_carry_labels_for_the_answer(vocabulary: Vocabulary) -> None:
    labels = {}
    for question in ("上个月的销售额", "上季度的销售额", "最近30天的销售额", "本月的销售额"):
        outcome = parse_question(question, vocabulary=vocabulary, today=TODAY)
        assert isinstance(outcome, Parsed) and outcome.spec.period is not None
        labels[question] = outcome.spec.period.label
    assert labels == {
        "上个月的销售额": "2026年10月",
        "上季度的销售额": "2026年第3季度",
        "最近30天的销售额": "最近30天",
        "本月的销售额": "2026年11月（截至23日）",
    }


@pytest.mark.parametrize(
    "question", ["最近99999999天的销售额", "过去100000年的订单数", "近9999999999个月的投诉数"]
)
def test_a_range_beyond_the_calendar_is_no_period_not_a_crash(vocabulary: Vocabulary, question: str) -> None:
    outcome = parse_question(question, vocabulary=vocabulary, today=TODAY)

    # The default period applies, and the answer says which one it used.
    assert isinstance(outcome, Parsed) and outcome.spec.period is not None
    assert outcome.spec.period.label == "2026年11月（截至23日）"


FOLLOW_UPS: list[tuple[str, str, dict[str, Any]]] = [
    ("上个月华东区销售额最高的五个客户", "那上上个月呢",
     _spec("sales", ("customer",), {"region": ("华东",)}, ("2026-09-01", "2026-09-30"), 5)),
    ("本月各地区的销售额", "换成按产品", _spec("sales", ("product",))),
    ("本月各产品的销售额", "只看华南", _spec("sales", ("product",), {"region": ("华南",)})),
    ("本月华东的销售额", "华南呢", _spec("sales", (), {"region": ("华南",)})),
    ("本月华东的销售额", "那上海呢", _spec("sales", (), {"city": ("上海",)})),
    ("上个月华东的销售额", "订单数呢", _spec("orders", (), {"region": ("华东",)}, LAST_MONTH)),
    ("上个月各地区的销售额", "前三名呢", _spec("sales", ("region",), period=LAST_MONTH, top_n=3)),
    ("本月各地区的销售额", "再按品类分", _spec("sales", ("region", "category"))),
    ("本月王丽的销售额", "那刘洋呢", _spec("sales", (), {"sales_rep": ("刘洋",)})),
    ("上个月的销售额", "商机金额呢", _spec("pipeline_amount", period=None)),
]  # fmt: skip


@pytest.mark.parametrize(("first", "then", "expected"), FOLLOW_UPS, ids=[t for _, t, _ in FOLLOW_UPS])
def test_a_follow_up_changes_only_what_it_says(
    first: str, then: str, expected: dict[str, Any], vocabulary: Vocabulary
) -> None:
    previous = parse_question(first, vocabulary=vocabulary, today=TODAY)
    assert isinstance(previous, Parsed)
    outcome = parse_question(then, vocabulary=vocabulary, today=TODAY, previous=previous.spec)
    assert isinstance(outcome, Parsed), outcome
    assert _slots(outcome.spec) == expected


def test_a_follow_up_given_as_json_keeps_its_context(vocabulary: Vocabulary) -> None:
    # The evaluation file and the CLI pass the previous spec as JSON (no `extra`).
    previous = parse_question("上个月各地区的订单数", vocabulary=vocabulary, today=TODAY)
    assert isinstance(previous, Parsed)
    restored = QuerySpec.from_json(previous.spec.to_json())
    outcome = parse_question("那上上个月呢", vocabulary=vocabulary, today=TODAY, previous=restored)
    assert isinstance(outcome, Parsed)
    assert _slots(outcome.spec) == _spec("orders", ("region",), period=("2026-09-01", "2026-09-30"))


def test_a_new_question_after_another_starts_afresh(vocabulary: Vocabulary) -> None:
    previous = parse_question("上个月华东区的销售额", vocabulary=vocabulary, today=TODAY)
    assert isinstance(previous, Parsed)
    outcome = parse_question("今年各品类的订单数", vocabulary=vocabulary, today=TODAY, previous=previous.spec)
    assert isinstance(outcome, Parsed)
    assert _slots(outcome.spec) == _spec("orders", ("category",), period=("2026-01-01", "2026-11-23"))


@pytest.mark.parametrize("question", ["华东怎么样", "上个月有多少", "多少", "各地区怎么样"])
def test_a_figure_without_a_metric_is_asked_back(question: str, vocabulary: Vocabulary) -> None:
    outcome = parse_question(question, vocabulary=vocabulary, today=TODAY)
    assert isinstance(outcome, Clarify), outcome
    assert outcome.question == render("clarify.which_metric")
    assert "销售额" in outcome.options and "订单数" in outcome.options


def test_an_answer_to_the_metric_question_completes_the_spec(vocabulary: Vocabulary) -> None:
    asked = parse_question("华东上个月怎么样", vocabulary=vocabulary, today=TODAY)
    assert isinstance(asked, Clarify) and asked.partial is not None
    outcome = parse_question("订单数", vocabulary=vocabulary, today=TODAY, previous=asked.partial)
    assert isinstance(outcome, Parsed)
    assert _slots(outcome.spec) == _spec("orders", (), {"region": ("华东",)}, LAST_MONTH)


def test_two_metrics_at_once_are_asked_back(vocabulary: Vocabulary) -> None:
    outcome = parse_question("上个月的销售额和投诉数", vocabulary=vocabulary, today=TODAY)
    assert isinstance(outcome, Clarify)
    assert set(outcome.options) == {"销售额", "投诉数"}


def test_a_name_of_a_customer_and_a_colleague_is_asked_back() -> None:
    vocabulary = Vocabulary(
        regions=frozenset({"华东"}),
        cities=frozenset({"上海"}),
        products=frozenset(),
        categories=frozenset(),
        staff={"王丽": "E02", "张伟": "E09"},
        customers={"张伟": ("C0001",)},
        customer_ids=frozenset({"C0001"}),
    )
    outcome = parse_question("张伟本月的销售额", vocabulary=vocabulary, today=TODAY)
    assert isinstance(outcome, Clarify)
    assert outcome.question == render("clarify.customer_or_staff", name="张伟")
    assert set(outcome.options) == {"客户张伟（C0001）", "销售员张伟"}
    assert outcome.partial is not None and outcome.partial.metric == "sales"
    # Each option, said back, settles it.
    staff = parse_question("销售员张伟", vocabulary=vocabulary, today=TODAY, previous=outcome.partial)
    customer = parse_question(
        "客户张伟（C0001）", vocabulary=vocabulary, today=TODAY, previous=outcome.partial
    )
    assert isinstance(staff, Parsed) and staff.spec.filter_values("sales_rep") == ("张伟",)
    assert isinstance(customer, Parsed) and customer.spec.filter_values("customer") == ("C0001",)
    # Words around the name settle it too.
    owned = parse_question("张伟负责的客户本月的销售额", vocabulary=vocabulary, today=TODAY)
    assert isinstance(owned, Parsed) and owned.spec.filter_values("sales_rep") == ("张伟",)


def test_a_typo_equally_near_two_names_is_asked_back() -> None:
    vocabulary = Vocabulary(
        regions=frozenset(),
        cities=frozenset(),
        products=frozenset(),
        categories=frozenset(),
        staff={"陈思远": "E01", "陈思源": "E09"},
    )
    outcome = parse_question("陈思元的业绩", vocabulary=vocabulary, today=TODAY)
    assert isinstance(outcome, Clarify)
    assert set(outcome.options) == {"销售员陈思远", "销售员陈思源"}


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ("上个月的利润是多少", "metric_not_available"),
        ("各产品的毛利率", "metric_not_available"),
        ("库存还有多少", "metric_not_available"),
        ("今天天气怎么样", "not_a_metrics_question"),
        ("你好", "not_a_metrics_question"),
        ("订单SO202604040001到哪了", "record_lookup"),
    ],
)
def test_what_the_layer_cannot_answer_gets_examples(question: str, code: str, vocabulary: Vocabulary) -> None:
    outcome = parse_question(question, vocabulary=vocabulary, today=TODAY)
    assert isinstance(outcome, Unsupported), outcome
    assert outcome.code == code
    assert outcome.examples and all(
        isinstance(parse_question(e, vocabulary=vocabulary, today=TODAY), Parsed) for e in outcome.examples
    )


def test_every_text_template_renders() -> None:
    fields = {
        "year": 2026, "month": 10, "day": 1, "end_year": 2026, "end_month": 10, "end_day": 31, "quarter": 3,
        "half": "上半年", "count": 7, "name": "张伟", "typed": "张玮", "word": "利润", "customer_id": "C0001",
    }  # fmt: skip
    for key in templates():
        assert render(key, **fields)
