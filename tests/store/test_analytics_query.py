"""The semantic layer's query engine on the demo company: every figure against hand-written SQL.

Each expected number is computed here by plain SQL over the demo fixture (or by hand from rows
read with plain SQL), never by the engine itself; both backends run every test.
"""

import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, Actor, actor_for
from crm_store.analytics.answers import refusal_text
from crm_store.analytics.query import QueryResult, compile_query, format_answer, run_query
from crm_store.analytics.spec import Filter, Period, QuerySpec
from crm_store.errors import CrmError, Forbidden, Invalid, NotFound
from crm_store.lapse import clear_population_gap_cache, lapse_status
from crm_store.models import CustomerScore, Employee, Ticket

TODAY = date(2026, 11, 23)
THIS_MONTH = Period(date(2026, 11, 1), TODAY, "本月")
LAST_MONTH = Period(date(2026, 10, 1), date(2026, 10, 31), "2026年10月")
LAST_QUARTER = Period(date(2026, 7, 1), date(2026, 9, 30), "上季度")
THIS_YEAR = Period(date(2026, 1, 1), TODAY, "今年")
COUNTED = "o.status NOT IN ('待付款', '已取消', '已退款')"
CENT = Decimal("0.01")


@pytest.fixture
def session(demo_store: sessionmaker[Session]) -> Iterator[Session]:
    with demo_store() as session:
        yield session


def rows(session: Session, sql: str, **params: Any) -> list[Any]:
    return list(session.execute(text(sql), params).all())


def money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def ask(session: Session, who: str | Actor, spec: QuerySpec) -> QueryResult:
    actor = who if isinstance(who, Actor) else actor_for(session, who)
    return run_query(session, spec, actor, today=TODAY)


def by_key(result: QueryResult) -> dict[Any, Any]:
    """The result as {key: value}: the single key itself for one dimension, else the tuple."""
    return {
        (keys[0] if len(keys) == 1 else keys): row[-1]
        for keys, row in zip(result.keys, result.rows, strict=True)
    }


# -- the fixture example and the sales metrics -------------------------------------------------------


def test_this_months_sales_of_east_china_is_the_sum_of_its_counted_orders(session: Session) -> None:
    (expected,) = rows(
        session,
        f"SELECT sum(o.amount) FROM orders o JOIN customers c ON c.customer_id = o.customer_id"
        f" WHERE c.region = '华东' AND o.order_date BETWEEN '2026-11-01' AND '2026-11-23' AND {COUNTED}",
    )[0]
    spec = QuerySpec("sales", filters=(Filter("region", ("华东",)),), period=THIS_MONTH)
    for who in ("E08", "E01"):
        result = ask(session, who, spec)
        assert result.total == money(expected) > 0
        assert result.rows == ((money(expected),),)
    assert result.interpretation == "本月 华东地区 的销售额"
    assert format_answer(result) == f"本月 华东地区 的销售额：¥{money(expected):,}。"


def test_an_uncounted_order_does_not_count(session: Session) -> None:
    (cancelled,) = rows(
        session,
        "SELECT o.order_date, c.region, o.amount FROM orders o JOIN customers c USING (customer_id)"
        " WHERE o.status = '已取消' ORDER BY o.order_date DESC",
    )[:1]
    day, region, amount = cancelled
    day = day if isinstance(day, date) else date.fromisoformat(day)
    spec = QuerySpec("sales", filters=(Filter("region", (region,)),), period=Period(day, day, ""))
    with_it = rows(
        session,
        "SELECT coalesce(sum(o.amount), 0) FROM orders o JOIN customers c USING (customer_id)"
        " WHERE c.region = :region AND o.order_date = :day",
        region=region,
        day=day,
    )[0][0]
    assert ask(session, "E08", spec).total == money(with_it) - money(amount)


def test_sales_by_region_of_last_month(session: Session) -> None:
    expected = {
        region: money(total)
        for region, total in rows(
            session,
            f"SELECT c.region, sum(o.amount) FROM orders o JOIN customers c USING (customer_id)"
            f" WHERE o.order_date BETWEEN '2026-10-01' AND '2026-10-31' AND {COUNTED} GROUP BY c.region",
        )
    }
    result = ask(session, "E08", QuerySpec("sales", group_by=("region",), period=LAST_MONTH))
    assert by_key(result) == expected
    assert result.total == sum(expected.values())
    assert result.columns == ("地区", "销售额")
    values = [row[-1] for row in result.rows]
    assert values == sorted(values, reverse=True)
    answer = format_answer(result)
    assert answer.startswith(
        f"按地区统计 2026年10月 的销售额，合计 ¥{sum(expected.values()):,}：\n地区 | 销售额\n"
    )
    top_region = max(expected, key=lambda r: expected[r])
    assert f"\n{top_region} | ¥{expected[top_region]:,}" in answer


def test_top_five_and_bottom_three_customers_of_last_quarter(session: Session) -> None:
    totals = rows(
        session,
        f"SELECT o.customer_id, c.name, sum(o.amount) FROM orders o JOIN customers c USING (customer_id)"
        f" WHERE o.order_date BETWEEN '2026-07-01' AND '2026-09-30' AND {COUNTED}"
        f" GROUP BY o.customer_id, c.name",
    )
    ranked = sorted(totals, key=lambda r: (-money(r[2]), r[0]))
    top = ask(session, "E08", QuerySpec("sales", group_by=("customer",), period=LAST_QUARTER, top_n=5))
    assert [keys[0] for keys in top.keys] == [r[0] for r in ranked[:5]]
    assert [row[-1] for row in top.rows] == [money(r[2]) for r in ranked[:5]]
    assert top.rows[0][0] == f"{ranked[0][1]}（{ranked[0][0]}）"
    assert top.total == sum(money(r[2]) for r in totals)
    assert top.interpretation == "按客户统计 上季度 的销售额（最高的5个）"
    bottom = ask(
        session,
        "E08",
        QuerySpec("sales", group_by=("customer",), period=LAST_QUARTER, top_n=3, order="asc"),
    )
    assert [row[-1] for row in bottom.rows] == [
        money(r[2]) for r in sorted(totals, key=lambda r: money(r[2]))[:3]
    ]


def test_sales_and_orders_by_product_and_category_read_the_order_lines(session: Session) -> None:
    lines = (
        "FROM order_items i JOIN orders o ON o.order_id = i.order_id JOIN products p"
        " ON p.product_id = i.product_id"
        f" WHERE o.order_date BETWEEN '2026-10-01' AND '2026-10-31' AND {COUNTED}"
    )
    by_product = {
        name: money(total)
        for name, total in rows(
            session, f"SELECT p.name, sum(i.quantity * i.unit_price) {lines} GROUP BY p.name"
        )
    }
    result = ask(session, "E08", QuerySpec("sales", group_by=("product",), period=LAST_MONTH))
    assert by_key(result) == by_product
    orders_by_category = dict(
        rows(session, f"SELECT p.category, count(DISTINCT o.order_id) {lines} GROUP BY p.category")
    )
    result = ask(session, "E08", QuerySpec("orders", group_by=("category",), period=LAST_MONTH))
    assert by_key(result) == orders_by_category
    (orders_in_month,) = rows(session, f"SELECT count(DISTINCT o.order_id) {lines}")[0]
    assert result.total == orders_in_month
    # A product filter: the lines of that product only, grouped by the customers' region.
    product = max(by_product, key=lambda p: by_product[p])
    expected = {
        region: money(total)
        for region, total in rows(
            session,
            "SELECT c.region, sum(i.quantity * i.unit_price) FROM order_items i"
            " JOIN orders o ON o.order_id = i.order_id JOIN products p ON p.product_id = i.product_id"
            " JOIN customers c ON c.customer_id = o.customer_id"
            f" WHERE p.name = :product AND o.order_date BETWEEN '2026-10-01' AND '2026-10-31' AND {COUNTED}"
            " GROUP BY c.region",
            product=product,
        )
    }
    spec = QuerySpec(
        "sales", group_by=("region",), filters=(Filter("product", (product,)),), period=LAST_MONTH
    )
    assert by_key(ask(session, "E08", spec)) == expected


def test_customers_average_order_value_and_repeat_rate_by_sales_rep(session: Session) -> None:
    per_buyer = rows(
        session,
        "SELECT e.name, o.customer_id, count(*), sum(o.amount) FROM orders o"
        " JOIN customers c ON c.customer_id = o.customer_id JOIN employees e ON e.employee_id = c.owner_id"
        f" WHERE o.order_date BETWEEN '2026-01-01' AND '2026-11-23' AND {COUNTED}"
        " GROUP BY e.name, o.customer_id",
    )
    buyers: dict[str, int] = defaultdict(int)
    repeaters: dict[str, int] = defaultdict(int)
    orders: dict[str, int] = defaultdict(int)
    sales: dict[str, Decimal] = defaultdict(Decimal)
    for rep, _, count, amount in per_buyer:
        buyers[rep] += 1
        repeaters[rep] += count >= 2
        orders[rep] += count
        sales[rep] += money(amount)
    spec = QuerySpec("customers", group_by=("sales_rep",), period=THIS_YEAR)
    assert by_key(ask(session, "E08", spec)) == dict(buyers)
    spec = spec.with_changes(metric="avg_order_value")
    result = ask(session, "E08", spec)
    assert by_key(result) == {rep: (sales[rep] / orders[rep]).quantize(CENT) for rep in sales}
    assert result.total == (sum(sales.values(), Decimal(0)) / sum(orders.values())).quantize(CENT)
    result = ask(session, "E08", spec.with_changes(metric="repeat_rate"))
    assert by_key(result) == pytest.approx({rep: 100 * repeaters[rep] / buyers[rep] for rep in buyers})
    assert result.total == pytest.approx(100 * sum(repeaters.values()) / sum(buyers.values()))
    assert "%" in format_answer(result)


# -- time grains --------------------------------------------------------------------------------------


def _counted_orders(session: Session) -> list[tuple[date, Decimal]]:
    return [
        (day if isinstance(day, date) else date.fromisoformat(day), money(amount))
        for day, amount in rows(session, f"SELECT o.order_date, o.amount FROM orders o WHERE {COUNTED}")
    ]


@pytest.mark.parametrize(
    ("grain", "bucket"),
    [
        ("day", lambda d: d.isoformat()),
        ("week", lambda d: f"{d.isocalendar().year}-W{d.isocalendar().week:02d}"),
        ("month", lambda d: f"{d.year}-{d.month:02d}"),
        ("quarter", lambda d: f"{d.year}-Q{(d.month - 1) // 3 + 1}"),
        ("year", lambda d: str(d.year)),
    ],
)
def test_sales_by_each_time_grain_in_time_order(session: Session, grain: str, bucket: Any) -> None:
    period = Period(date(2025, 11, 15), TODAY, "最近一年")
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for day, amount in _counted_orders(session):
        if period.start <= day <= period.end:
            expected[bucket(day)] += amount
    result = ask(session, "E08", QuerySpec("sales", group_by=(grain,), period=period))
    assert by_key(result) == dict(expected)
    assert [keys[0] for keys in result.keys] == sorted(expected)  # chronological, not by amount


def test_a_time_filter_keeps_that_bucket(session: Session) -> None:
    expected = sum(amount for day, amount in _counted_orders(session) if (day.year, day.month) == (2026, 10))
    result = ask(session, "E08", QuerySpec("sales", filters=(Filter("month", ("2026-10",)),)))
    assert result.total == expected
    assert result.interpretation == "2026年10月 的销售额"
    with pytest.raises(Invalid) as bad:
        ask(session, "E08", QuerySpec("sales", filters=(Filter("month", ("十月",)),)))
    assert bad.value.code == "bad_time_value"


# -- customers, complaints, satisfaction, pipeline, lapse, tiers --------------------------------------


def test_new_customers_by_city_and_year(session: Session) -> None:
    expected = dict(
        rows(
            session,
            "SELECT city, count(*) FROM customers"
            " WHERE created_at BETWEEN '2024-01-01' AND '2024-12-31' GROUP BY city",
        )
    )
    spec = QuerySpec(
        "new_customers", group_by=("city",), period=Period(date(2024, 1, 1), date(2024, 12, 31), "2024年")
    )
    assert by_key(ask(session, "E08", spec)) == expected
    years: dict[str, int] = defaultdict(int)
    for (created,) in rows(session, "SELECT created_at FROM customers WHERE created_at IS NOT NULL"):
        years[str(created)[:4]] += 1
    assert by_key(ask(session, "E08", QuerySpec("new_customers", group_by=("year",)))) == dict(years)


def test_complaints_by_category_and_region(session: Session) -> None:
    expected = dict(
        rows(
            session,
            "SELECT category, count(*) FROM tickets"
            " WHERE opened_at BETWEEN '2026-10-01' AND '2026-10-31' GROUP BY category",
        )
    )
    result = ask(session, "E08", QuerySpec("complaints", group_by=("complaint_category",), period=LAST_MONTH))
    assert by_key(result) == expected
    assert result.total == sum(expected.values())
    east = rows(
        session,
        "SELECT count(*) FROM tickets t JOIN customers c ON c.customer_id = t.customer_id"
        " WHERE c.region = '华东' AND t.opened_at BETWEEN '2026-11-01' AND '2026-11-23'",
    )[0][0]
    assert ask(session, "E01", QuerySpec("complaints", period=THIS_MONTH)).total == east


def test_average_satisfaction_counts_ratings_by_their_day_in_china(session: Session) -> None:
    ratings = {
        # 2026-10-31 20:00 UTC is 2026-11-01 04:00 in Beijing: a November rating.
        "T00001": (5, datetime(2026, 10, 31, 20, 0, tzinfo=UTC)),
        "T00002": (3, datetime(2026, 11, 10, 2, 0, tzinfo=UTC)),
        "T00003": (1, datetime(2026, 10, 31, 15, 0, tzinfo=UTC)),  # 23:00 in Beijing: October
        "T09001": (4, datetime(2026, 11, 21, 9, 0, tzinfo=UTC)),
    }
    for ticket_id, (rating, rated_at) in ratings.items():
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.rating, ticket.rated_at = rating, rated_at
    session.flush()
    november = [5, 3, 4]
    result = ask(session, "E08", QuerySpec("avg_csat", period=THIS_MONTH))
    assert result.total == pytest.approx(statistics.mean(november))
    assert result.interpretation == "本月 的平均满意度"
    assert format_answer(result) == "本月 的平均满意度：4.00 分。"
    by_month = by_key(ask(session, "E08", QuerySpec("avg_csat", group_by=("month",))))
    assert by_month == pytest.approx({"2026-10": 1.0, "2026-11": statistics.mean(november)})
    # The east-China manager: only the ratings of tickets of east-China customers.
    east = [
        rating
        for (customer_region, rating) in rows(
            session,
            "SELECT c.region, t.rating FROM tickets t JOIN customers c ON c.customer_id = t.customer_id"
            " WHERE t.ticket_id IN ('T00001', 'T00002', 'T09001')",
        )
        if customer_region == "华东"
    ]
    expected_east = statistics.mean(east) if east else None
    assert ask(session, "E01", QuerySpec("avg_csat", period=THIS_MONTH)).total == pytest.approx(expected_east)


def test_pipeline_and_weighted_pipeline_of_open_opportunities(session: Session) -> None:
    stage_probability = {"线索": 10, "需求确认": 30, "报价": 50, "谈判": 70, "赢单": 100, "输单": 0}
    opportunities = rows(
        session,
        "SELECT p.stage, p.amount, e.name FROM opportunities p"
        " JOIN customers c ON c.customer_id = p.customer_id"
        " LEFT JOIN employees e ON e.employee_id = c.owner_id WHERE p.stage NOT IN ('赢单', '输单')",
    )
    by_stage: dict[str, Decimal] = defaultdict(Decimal)
    weighted_by_rep: dict[str, Decimal] = defaultdict(Decimal)
    for stage, amount, rep in opportunities:
        by_stage[stage] += money(amount)
        weighted_by_rep[rep] += (money(amount) * stage_probability[stage] / 100).quantize(CENT)
    result = ask(session, "E08", QuerySpec("pipeline_amount", group_by=("opportunity_stage",)))
    assert by_key(result) == dict(by_stage)
    assert result.interpretation == "按商机阶段统计 所有进行中 的商机金额"
    result = ask(session, "E08", QuerySpec("weighted_pipeline", group_by=("sales_rep",)))
    assert by_key(result) == dict(weighted_by_rep)
    # Expected to close in December 2026 only.
    (december,) = rows(
        session,
        "SELECT sum(amount) FROM opportunities WHERE stage NOT IN ('赢单', '输单')"
        " AND expected_close BETWEEN '2026-12-01' AND '2026-12-31'",
    )[0]
    spec = QuerySpec("pipeline_amount", period=Period(date(2026, 12, 1), date(2026, 12, 31), "2026年12月"))
    assert ask(session, "E08", spec).total == money(december)


def test_lapsed_customers_by_region_follow_the_lapse_rule(session: Session) -> None:
    clear_population_gap_cache()
    dates: dict[str, list[date]] = defaultdict(list)
    regions: dict[str, str] = {}
    for customer_id, region, day in rows(
        session,
        "SELECT c.customer_id, c.region, o.order_date FROM orders o JOIN customers c USING (customer_id)"
        f" WHERE {COUNTED} AND o.order_date <= '2026-11-23'",
    ):
        dates[customer_id].append(day if isinstance(day, date) else date.fromisoformat(day))
        regions[customer_id] = region
    gaps = [
        (later - earlier).days
        for days in dates.values()
        for earlier, later in zip(sorted(set(days)), sorted(set(days))[1:], strict=False)
    ]
    population = float(statistics.median(gaps))
    expected: dict[str, int] = defaultdict(int)
    for customer_id, days in dates.items():
        if lapse_status(days, today=TODAY, population_gap=population).lapsed:
            expected[regions[customer_id]] += 1
    result = ask(session, "E08", QuerySpec("lapsed_customers", group_by=("region",)))
    assert by_key(result) == dict(expected)
    assert result.total == sum(expected.values())
    assert ask(session, "E01", QuerySpec("lapsed_customers")).total == expected["华东"]


def test_customer_tier_reads_the_scores(session: Session) -> None:
    tiers = {"C0001": "关键", "C0002": "普通", "C0003": "关键", "C0005": "小客户"}
    for customer_id, tier in tiers.items():
        session.add(
            CustomerScore(customer_id=customer_id, computed_on=TODAY, value_tier=tier, lifecycle="repeat")
        )
    session.flush()
    per_customer = dict(
        rows(
            session,
            f"SELECT o.customer_id, sum(o.amount) FROM orders o WHERE {COUNTED}"
            " AND o.order_date BETWEEN '2026-01-01' AND '2026-11-23' GROUP BY o.customer_id",
        )
    )
    expected: dict[str | None, Decimal] = defaultdict(Decimal)
    for customer_id, amount in per_customer.items():
        expected[tiers.get(customer_id)] += money(amount)
    result = ask(session, "E08", QuerySpec("sales", group_by=("customer_tier",), period=THIS_YEAR))
    assert by_key(result) == dict(expected)
    assert "未评级" in [row[0] for row in result.rows]
    spec = QuerySpec("sales", filters=(Filter("customer_tier", ("关键",)),), period=THIS_YEAR)
    assert ask(session, "E08", spec).total == expected["关键"]


def test_a_dimension_that_means_nothing_for_the_metric_is_refused(session: Session) -> None:
    for spec in (
        QuerySpec("complaints", group_by=("opportunity_stage",)),
        QuerySpec("new_customers", group_by=("product",)),
        QuerySpec("lapsed_customers", group_by=("month",)),
        QuerySpec("pipeline_amount", filters=(Filter("complaint_category", ("物流配送",)),)),
    ):
        with pytest.raises(Invalid) as refused:
            ask(session, "E08", spec)
        assert refused.value.code == "unsupported_combination"
        assert refusal_text(refused.value).startswith("抱歉，")


# -- scope ----------------------------------------------------------------------------------------------


def _sales_of_year(session: Session, where: str, **params: Any) -> Decimal:
    (total,) = rows(
        session,
        "SELECT sum(o.amount) FROM orders o JOIN customers c ON c.customer_id = o.customer_id"
        f" WHERE {COUNTED} AND o.order_date BETWEEN '2026-01-01' AND '2026-11-23' AND {where}",
        **params,
    )[0]
    return money(total)


def test_a_salesperson_sees_only_their_customers(session: Session) -> None:
    spec = QuerySpec("sales", group_by=("sales_rep",), period=THIS_YEAR)
    result = ask(session, "E02", spec)
    assert by_key(result) == {"王丽": _sales_of_year(session, "c.owner_id = 'E02'")}
    mine = QuerySpec("sales", filters=(Filter("sales_rep", ("王丽",)),), period=THIS_YEAR)
    assert ask(session, "E02", mine).total == _sales_of_year(session, "c.owner_id = 'E02'")
    by_customer = ask(session, "E02", QuerySpec("sales", group_by=("customer",), period=THIS_YEAR))
    owned = {cid for (cid,) in rows(session, "SELECT customer_id FROM customers WHERE owner_id = 'E02'")}
    assert {keys[0] for keys in by_customer.keys} <= owned
    with pytest.raises(Forbidden) as refused:
        ask(session, "E02", mine.with_changes(filters=(Filter("sales_rep", ("刘洋",)),)))
    assert refused.value.code == "out_of_scope"
    assert "刘洋" not in str(refused.value)  # no staff name in the error (it reaches logs)
    with pytest.raises(NotFound) as hidden:
        ask(session, "E02", mine.with_changes(filters=(Filter("customer", ("C0003",)),)))
    assert hidden.value.code == "customer_not_found"


def test_a_manager_sees_their_region_and_is_refused_another(session: Session) -> None:
    result = ask(session, "E01", QuerySpec("sales", group_by=("region",), period=THIS_YEAR))
    assert by_key(result) == {"华东": _sales_of_year(session, "c.region = '华东'")}
    with pytest.raises(Forbidden) as refused:
        ask(session, "E01", QuerySpec("sales", filters=(Filter("region", ("华南",)),), period=THIS_YEAR))
    assert refused.value.code == "out_of_scope"
    assert refusal_text(refused.value) == "抱歉，地区「华南」不在您的查看范围内，无法提供相关数据。"
    with pytest.raises(Forbidden):
        ask(session, "E01", QuerySpec("sales", filters=(Filter("city", ("北京",)),), period=THIS_YEAR))
    shanghai = QuerySpec("sales", filters=(Filter("city", ("上海",)),), period=THIS_YEAR)
    assert ask(session, "E01", shanghai).total == _sales_of_year(session, "c.city = '上海'")


def test_a_national_manager_and_an_admin_see_every_region(session: Session) -> None:
    session.add(Employee(employee_id="E09", name="钱总", role="manager", region="全国"))
    session.flush()
    spec = QuerySpec("sales", group_by=("region",), period=THIS_YEAR)
    expected = {
        region: money(total)
        for region, total in rows(
            session,
            "SELECT c.region, sum(o.amount) FROM orders o JOIN customers c USING (customer_id)"
            f" WHERE {COUNTED} AND o.order_date BETWEEN '2026-01-01' AND '2026-11-23' GROUP BY c.region",
        )
    }
    assert by_key(ask(session, "E09", spec)) == expected
    assert by_key(ask(session, "E08", spec)) == expected
    south = QuerySpec("sales", filters=(Filter("region", ("华南",)),), period=THIS_YEAR)
    assert ask(session, "E09", south).total == expected["华南"]


def test_a_service_agent_sees_the_customers_of_their_tickets(session: Session) -> None:
    theirs = "c.customer_id IN (SELECT customer_id FROM tickets WHERE assignee_id = 'E06')"
    assert ask(session, "E06", QuerySpec("sales", period=THIS_YEAR)).total == _sales_of_year(session, theirs)
    (complaints,) = rows(
        session,
        f"SELECT count(*) FROM tickets t JOIN customers c ON c.customer_id = t.customer_id WHERE {theirs}",
    )[0]
    assert ask(session, "E06", QuerySpec("complaints")).total == complaints


def test_a_customer_gets_no_figures(session: Session) -> None:
    spec = QuerySpec("sales", period=THIS_MONTH)
    with pytest.raises(Forbidden) as refused:
        ask(session, CUSTOMER, spec)
    assert refused.value.code == "staff_only"
    with pytest.raises(Forbidden):
        compile_query(spec, Actor(role="customer"), today=TODAY)
    assert refusal_text(refused.value) == "抱歉，经营数据只对公司员工开放。"


def test_user_text_reaches_sql_only_as_bound_parameters(session: Session) -> None:
    hostile = "华东' OR '1'='1"
    spec = QuerySpec("sales", filters=(Filter("city", (hostile,)),), period=THIS_YEAR)
    statement = compile_query(spec, actor_for(session, "E08"), today=TODAY)
    assert hostile not in str(statement)
    assert ask(session, "E08", spec).total == 0


def test_errors_are_crm_errors_with_codes(session: Session) -> None:
    with pytest.raises(CrmError):
        ask(session, "E01", QuerySpec("orders", filters=(Filter("region", ("华北",)),)))


def test_last_seven_days_by_day(session: Session) -> None:
    week = Period(TODAY - timedelta(days=6), TODAY, "最近7天")
    expected: dict[str, int] = defaultdict(int)
    for day, _ in _counted_orders(session):
        if week.start <= day <= week.end:
            expected[day.isoformat()] += 1
    assert by_key(ask(session, "E08", QuerySpec("orders", group_by=("day",), period=week))) == dict(expected)


# -- the total read with the groups (one statement) ------------------------------------------------------


def test_a_regions_top_three_customers_come_with_the_whole_regions_total(session: Session) -> None:
    totals = rows(
        session,
        "SELECT o.customer_id, c.name, sum(o.amount) FROM orders o JOIN customers c USING (customer_id)"
        f" WHERE c.region = '华东' AND o.order_date BETWEEN '2026-07-01' AND '2026-09-30' AND {COUNTED}"
        " GROUP BY o.customer_id, c.name",
    )
    assert len(totals) > 3
    ranked = sorted(totals, key=lambda r: (-money(r[2]), r[0]))[:3]
    spec = QuerySpec("sales", group_by=("customer",), period=LAST_QUARTER, top_n=3)
    top = ask(session, "E01", spec)
    assert top.rows == tuple(
        (f"{name}（{customer_id}）", money(amount)) for customer_id, name, amount in ranked
    )
    assert [keys[0] for keys in top.keys] == [r[0] for r in ranked]
    # The total is the region's, every customer of it, not the three shown.
    assert top.total == sum((money(r[2]) for r in totals), Decimal(0))


def test_counts_and_means_grouped_by_time_total_over_the_whole_period(session: Session) -> None:
    (counted,) = rows(
        session,
        f"SELECT count(*) FROM orders o WHERE o.order_date BETWEEN '2026-01-01' AND '2026-11-23'"
        f" AND {COUNTED}",
    )[0]
    result = ask(session, "E08", QuerySpec("orders", group_by=("month",), period=THIS_YEAR))
    assert result.total == counted > 0
    assert type(result.total) is int
    assert format_answer(result).startswith(f"按月统计 今年 的订单数，合计 {counted:,} 单")
    rated = {
        "T00001": (5, date(2026, 9, 3)),
        "T00002": (2, date(2026, 10, 8)),
        "T00003": (4, date(2026, 10, 9)),
    }
    for ticket_id, (rating, day) in rated.items():
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.rating, ticket.rated_at = rating, datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    session.flush()
    (mean,) = rows(session, "SELECT avg(rating) FROM tickets WHERE rating IS NOT NULL")[0]
    by_month = ask(session, "E08", QuerySpec("avg_csat", group_by=("month",)))
    assert by_key(by_month) == pytest.approx({"2026-09": 5.0, "2026-10": 3.0})
    assert by_month.total == pytest.approx(float(mean)) == pytest.approx(11 / 3)


def test_groups_of_nothing_have_no_total(session: Session) -> None:
    long_ago = Period(date(2001, 1, 1), date(2001, 12, 31), "2001年")
    sales = ask(session, "E08", QuerySpec("sales", group_by=("region",), period=long_ago))
    assert sales.rows == ()
    assert sales.total == 0
    average = ask(
        session, "E08", QuerySpec("avg_order_value", group_by=("customer",), period=long_ago, top_n=5)
    )
    assert average.rows == ()
    assert average.total is None


def test_orders_by_category_and_month_and_the_best_months_average_order(session: Session) -> None:
    lines = rows(
        session,
        "SELECT p.category, o.order_id, o.order_date, o.amount FROM order_items i"
        " JOIN orders o ON o.order_id = i.order_id JOIN products p ON p.product_id = i.product_id"
        f" WHERE o.order_date BETWEEN '2026-01-01' AND '2026-11-23' AND {COUNTED}",
    )
    orders_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for category, order_id, day, _ in lines:
        orders_of[(category, str(day)[:7])].add(order_id)
    spec = QuerySpec("orders", group_by=("category", "month"), period=THIS_YEAR)
    result = ask(session, "E08", spec)
    assert by_key(result) == {key: len(ids) for key, ids in orders_of.items()}
    assert result.total == len({order_id for _, order_id, _, _ in lines})
    sales: dict[str, Decimal] = defaultdict(Decimal)
    orders: dict[str, int] = defaultdict(int)
    for day, amount in _counted_orders(session):
        if THIS_YEAR.start <= day <= THIS_YEAR.end:
            sales[f"{day.year}-{day.month:02d}"] += amount
            orders[f"{day.year}-{day.month:02d}"] += 1
    average = {month: (sales[month] / orders[month]).quantize(CENT) for month in sales}
    best = sorted(average, key=lambda month: -sales[month] / orders[month])[:2]
    top = ask(session, "E08", QuerySpec("avg_order_value", group_by=("month",), period=THIS_YEAR, top_n=2))
    assert [keys[0] for keys in top.keys] == best
    assert [row[-1] for row in top.rows] == [average[month] for month in best]
    assert top.total == (sum(sales.values(), Decimal(0)) / sum(orders.values())).quantize(CENT)
