"""Customer value and risk: RFM, value tier, lifecycle, CLV and churn risk, on both engines.

Expectations are computed by hand on small crafted stores, and on the demo fixture by plain SQL
written here and a direct restatement of the documented rules, never by the module's own code.
"""

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import actor_for
from crm_store.analytics.customer_value import (
    bucket_score,
    churn_risk,
    csat_average,
    customer_value_tier,
    lifetime_value,
    refresh_scores,
)
from crm_store.customer360 import customer_view
from crm_store.lapse import clear_population_gap_cache, lapsed_customers
from crm_store.models import Customer, CustomerScore, Order, Ticket
from crm_store.settings import AnalyticsSettings

TODAY = date(2026, 11, 23)
DEFAULTS = AnalyticsSettings()


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def _risk(since: int, threshold: int) -> float:
    """The documented churn risk, written out: 1 / (1 + e^(−4·(d − t)/t))."""
    return 1 / (1 + math.exp(-4 * (since - threshold) / threshold))


def _clv(monetary: float, risk: float) -> float:
    """The documented CLV with the defaults: monetary × 0.3 a year × 1.1 / (0.1 + risk)."""
    return monetary * 0.3 * 1.1 / (0.1 + risk)


# -- the pure rules ---------------------------------------------------------------------------------


def test_churn_risk_is_one_half_exactly_at_the_lapse_threshold() -> None:
    assert churn_risk(60, 60) == 0.5
    assert churn_risk(61, 60) > 0.5 > churn_risk(59, 60)
    assert churn_risk(400, 400) == 0.5
    assert churn_risk(0, 60) == pytest.approx(1 / (1 + math.exp(4)))
    assert churn_risk(120, 60) == pytest.approx(1 / (1 + math.exp(-4)))
    # No counted order: nothing to lose yet.
    assert churn_risk(None, None) == 0.0


def test_clv_worked_example_of_the_documentation() -> None:
    # 12,000 元 in 4 orders over 12 months, churn risk 0.2: 900 元 margin per order × 4 a year
    # = 3,600 元 a year, × (1 + 0.1)/(0.1 + 0.2) = 3.667 years.
    assert lifetime_value(Decimal(12000), 0.2, DEFAULTS) == Decimal("13200.00")
    assert lifetime_value(Decimal(0), 0.0, DEFAULTS) == Decimal("0.00")


def test_bucket_scores_are_quintiles_and_ties_share_one() -> None:
    # Ten distinct values: two per quintile.
    assert [bucket_score(worse, 10) for worse in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # Six customers tied at the bottom (nobody worse) all get 1; the next ones start above them.
    assert bucket_score(0, 10) == 1 and bucket_score(6, 10) == 4


# -- a crafted store, computed by hand --------------------------------------------------------------


def _order(
    session: Session, n: int, customer_id: str, day: date, amount: int, status: str = "已签收"
) -> None:
    session.add(
        Order(
            order_id=f"SO2026{n:08d}",
            customer_id=customer_id,
            order_date=day,
            status=status,
            amount=Decimal(amount),
        )
    )


def _crafted(session: Session) -> None:
    """A: monthly, B: every 200 days, C: one purchase long ago, D: two orders on one day,
    E: bought only before the window, F: never (a cancelled order does not count)."""
    for cid in "ABCDEF":
        session.add(Customer(customer_id=f"C000{cid}", name=f"客户{cid}", type="个人"))
    session.flush()
    for n, (cid, days, amount) in enumerate(
        [("A", 10, 5000), ("A", 40, 3000), ("A", 70, 2000), ("B", 100, 1000), ("B", 300, 1000),
         ("C", 200, 500), ("D", 5, 500), ("D", 5, 500), ("E", 400, 9000)],
        start=1,
    ):  # fmt: skip
        _order(session, n, f"C000{cid}", ago(days), amount)
    _order(session, 99, "C000F", ago(3), 99_999, status="已取消")


def test_refresh_scores_a_crafted_store_as_computed_by_hand(session_factory: sessionmaker[Session]) -> None:
    clear_population_gap_cache()
    with session_factory.begin() as session:
        _crafted(session)
    with session_factory.begin() as session:
        assert refresh_scores(session, today=TODAY, settings=DEFAULTS) == 6
    with session_factory() as session:
        rows = {r.customer_id[-1]: r for r in session.scalars(select(CustomerScore))}

    # Recency, frequency and monetary over the 12 months after 2025-11-23.
    assert {k: (r.recency_days, r.frequency, r.monetary) for k, r in rows.items()} == {
        "A": (10, 3, Decimal("10000.00")),
        "B": (100, 2, Decimal("2000.00")),
        "C": (200, 1, Decimal("500.00")),
        "D": (5, 2, Decimal("1000.00")),
        "E": (400, 0, Decimal("0.00")),
        "F": (None, 0, Decimal("0.00")),
    }
    # Four customers bought in the window: score = 1 + ⌊5 × (strictly worse) / 4⌋.
    # Recency: D (3 worse) 4, A (2) 3, B (1) 2, C 1. Frequency: A (3 worse) 4, B and D tie (1) 2, C 1.
    # Monetary: A 4, B 3, D 2, C 1.
    assert {k: (r.r_score, r.f_score, r.m_score) for k, r in rows.items()} == {
        "A": (3, 4, 4),
        "B": (2, 2, 3),
        "C": (1, 1, 1),
        "D": (4, 2, 2),
        "E": (None, None, None),
        "F": (None, None, None),
    }
    # Revenue 13,500: 80 % = 10,800 and 95 % = 12,825. Spent more than A: 0; than B: 10,000 (< 80 %,
    # so B crosses the line and is 关键); than D: 12,000 (普通); than C: 13,000 (小客户).
    assert {k: r.value_tier for k, r in rows.items()} == {
        "A": "关键",
        "B": "关键",
        "C": "小客户",
        "D": "普通",
        "E": "小客户",
        "F": "小客户",
    }
    assert {k: r.lifecycle for k, r in rows.items()} == {
        "A": "回头客",
        "B": "回头客",
        "C": "流失预警",  # 200 days > 60, the population gap (median of 30, 30, 200) being 30
        "D": "回头客",  # two counted orders, though on one day
        "E": "已流失",
        "F": "潜在",
    }
    # Thresholds: A max(60, 2 × 30); B 2 × 200 = 400; C, D and E a single purchase day: 2 × 30 → 60.
    expected_risk = {
        "A": _risk(10, 60),
        "B": _risk(100, 400),
        "C": _risk(200, 60),
        "D": _risk(5, 60),
        "E": _risk(400, 60),
        "F": 0.0,
    }
    assert {k: r.churn_risk for k, r in rows.items()} == pytest.approx(expected_risk, abs=1e-9)
    assert rows["A"].churn_risk == pytest.approx(0.0345, abs=1e-4)
    for key, row in rows.items():
        monetary = float(row.monetary)
        assert float(row.clv) == pytest.approx(_clv(monetary, expected_risk[key]), abs=0.011), key
    assert float(rows["A"].clv) == pytest.approx(24_545.3, abs=0.1)


def test_a_refresh_replaces_the_previous_snapshot(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        _crafted(session)
    with session_factory.begin() as session:
        refresh_scores(session, today=TODAY - timedelta(days=1), settings=DEFAULTS)
    with session_factory.begin() as session:
        _order(session, 50, "C000F", ago(0), 20_000)
    with session_factory.begin() as session:
        assert refresh_scores(session, today=TODAY, settings=DEFAULTS) == 6
    with session_factory() as session:
        rows = session.scalars(select(CustomerScore)).all()
        assert {r.computed_on for r in rows} == {TODAY}
        f = session.get(CustomerScore, "C000F")
        assert f is not None
        # F's 20,000 of 33,500 is the largest spend: 关键; one order: 新客; the most recent of five: R 5.
        assert (f.value_tier, f.lifecycle, f.frequency, f.r_score) == ("关键", "新客", 1, 5)


def test_the_tier_is_read_from_the_score_row_or_computed_by_the_same_rule(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _crafted(session)
    with session_factory() as session:
        # Not scored yet: computed now, the same as the refresh will say.
        before = {
            cid: customer_value_tier(session, customer_id=cid, today=TODAY) for cid in ("C000B", "C000D")
        }
    assert before == {"C000B": "关键", "C000D": "普通"}
    with session_factory.begin() as session:
        refresh_scores(session, today=TODAY, settings=DEFAULTS)
        session.execute(
            update(CustomerScore).where(CustomerScore.customer_id == "C000B").values(value_tier="普通")
        )
    with session_factory() as session:
        # The row is what the 360 view and complaints read …
        assert customer_value_tier(session, customer_id="C000B", today=TODAY) == "普通"
        # … unless it was computed after the day asked about.
        assert customer_value_tier(session, customer_id="C000B", today=ago(1)) == "关键"


# -- the demo fixture, against plain SQL --------------------------------------------------------------

_WINDOW_SPEND = text(
    "SELECT customer_id, SUM(amount), COUNT(*) FROM orders "
    "WHERE status NOT IN ('待付款', '已取消', '已退款') AND order_date > :start AND order_date <= :today "
    "GROUP BY customer_id"
)


def _expected_tiers(spends: dict[str, Decimal], customers: list[str]) -> dict[str, str]:
    """The revenue-share rule restated: 关键 while those who spent more made < 80 %, 普通 < 95 %."""
    total = sum(spends.values(), Decimal(0))
    tiers = {}
    for cid in customers:
        mine = spends.get(cid, Decimal(0))
        above = sum((s for s in spends.values() if s > mine), Decimal(0))
        if mine <= 0:
            tiers[cid] = "小客户"
        elif above < Decimal("0.80") * total:
            tiers[cid] = "关键"
        elif above < Decimal("0.95") * total:
            tiers[cid] = "普通"
        else:
            tiers[cid] = "小客户"
    return tiers


def test_demo_scores_match_plain_sql_and_the_revenue_share_rule(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        refresh_scores(session, today=TODAY, settings=DEFAULTS)
    with demo_store() as session:
        customers = list(session.scalars(select(Customer.customer_id).order_by(Customer.customer_id)))
        figures = {
            cid: (Decimal(spend).quantize(Decimal("0.01")), int(count))
            for cid, spend, count in session.execute(
                _WINDOW_SPEND, {"start": date(2025, 11, 23), "today": TODAY}
            )
        }
        rows = {r.customer_id: r for r in session.scalars(select(CustomerScore))}
    assert set(rows) == set(customers)
    for cid in customers:
        spend, count = figures.get(cid, (Decimal("0.00"), 0))
        assert (rows[cid].monetary, rows[cid].frequency) == (spend, count), cid
    expected = _expected_tiers({cid: spend for cid, (spend, _) in figures.items()}, customers)
    assert {cid: r.value_tier for cid, r in rows.items()} == expected
    counts = {tier: list(expected.values()).count(tier) for tier in ("关键", "普通", "小客户")}
    assert counts == {"关键": 24, "普通": 13, "小客户": 23}
    # Scores exist exactly for the customers who bought in the window, each between 1 and 5, and the
    # best recency (the most recent last order) scores 5.
    scored = [r for r in rows.values() if r.frequency > 0]
    assert {r.customer_id for r in scored} == set(figures)
    assert all(1 <= s <= 5 for r in scored for s in (r.r_score, r.f_score, r.m_score) if s is not None)
    most_recent = min(r.recency_days for r in scored if r.recency_days is not None)
    assert {r.r_score for r in scored if r.recency_days == most_recent} == {5}
    assert all(r.r_score is None for r in rows.values() if r.frequency == 0)


def test_churn_risk_above_one_half_is_exactly_the_lapsed_customers(demo_store: sessionmaker[Session]) -> None:
    clear_population_gap_cache()
    with demo_store.begin() as session:
        refresh_scores(session, today=TODAY, settings=DEFAULTS)
    with demo_store() as session:
        lapsed = {c.customer_id for c in lapsed_customers(session, today=TODAY)}
        risky = {r.customer_id for r in session.scalars(select(CustomerScore)) if r.churn_risk > 0.5}
    assert lapsed and risky == lapsed


# -- the 360 view ------------------------------------------------------------------------------------


def test_the_360_view_shows_the_scores_and_agrees_before_and_after_a_refresh(
    demo_store: sessionmaker[Session],
) -> None:
    clear_population_gap_cache()
    with demo_store() as session:
        admin = actor_for(session, "E08")
        ids = list(session.scalars(select(Customer.customer_id).order_by(Customer.customer_id)))
        before = {cid: customer_view(session, admin, cid, today=TODAY) for cid in ids}
        session.rollback()
    with demo_store.begin() as session:
        refresh_scores(session, today=TODAY, settings=DEFAULTS)
    with demo_store() as session:
        after = {cid: customer_view(session, admin, cid, today=TODAY) for cid in ids}
        rows = {r.customer_id: r for r in session.scalars(select(CustomerScore))}
    for cid in ids:
        old, new, row = before[cid], after[cid], rows[cid]
        # Computed now or read from the refresh: the same tier, CLV and churn risk.
        assert (old.value_tier, old.clv) == (new.value_tier, new.clv) == (row.value_tier, row.clv), cid
        assert old.churn_risk == pytest.approx(new.churn_risk, abs=1e-9), cid
        assert old.lifecycle == new.lifecycle == row.lifecycle, cid
        assert (old.r_score, old.scores_as_of) == (None, None)
        assert (new.r_score, new.f_score, new.m_score) == (row.r_score, row.f_score, row.m_score)
        assert new.scores_as_of == TODAY
    data = after["C0003"].to_json()
    assert data["churn_risk"] > 0.5 and data["lifecycle"] == "流失预警"
    assert data["rfm"] == {"recency": rows["C0003"].r_score, "frequency": 3, "monetary": 4}
    assert data["scores_as_of"] == "2026-11-23"


# -- figures over a scope ----------------------------------------------------------------------------


def test_csat_average_over_the_scope_and_period(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        tickets = {t.ticket_id: t for t in session.scalars(select(Ticket))}
        # T09001 (C0001) and T00001 (C0004) are of E02's customers; T00002 (C0006) is not.
        owners = dict(session.execute(select(Customer.customer_id, Customer.owner_id)).all())
        rated = {"T09001": 5, "T00002": 2, "T00001": 4}
        for ticket_id, rating in rated.items():
            tickets[ticket_id].rating = rating
            # 20:00 in Beijing on 11-20: 12:00 UTC, inside the period.
            tickets[ticket_id].rated_at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        # Rated at 23:30 on 10-31 in Beijing (15:30 UTC): October, outside November.
        tickets["T00003"].rating = 1
        tickets["T00003"].rated_at = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)
        owner_of = {tid: owners.get(tickets[tid].customer_id or "") for tid in rated}
    with demo_store() as session:
        e02, e08 = actor_for(session, "E02"), actor_for(session, "E08")
        everyone = csat_average(session, e08, start=date(2026, 11, 1), end=TODAY)
        own = csat_average(session, e02, start=date(2026, 11, 1), end=TODAY)
    assert everyone.rated == 3
    assert everyone.average == pytest.approx((5 + 2 + 4) / 3)
    mine = [r for tid, r in rated.items() if owner_of[tid] == "E02"]
    assert mine == [5, 4]
    assert (own.rated, own.average) == (2, 4.5)
