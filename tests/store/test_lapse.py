"""The one lapse rule: pure on order dates, and its store wrapper over a scope."""

import statistics
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import actor_for, customer_scope
from crm_store.lapse import (
    COUNTED_EXCLUDED_STATUSES,
    MIN_LAPSE_DAYS,
    LapsedCustomer,
    _histogram_median,
    _lapsed_streamed,
    clear_population_gap_cache,
    lapse_status,
    lapsed_customers,
    median_gap,
    population_median_gap,
)
from crm_store.models import Customer, Employee, Order

TODAY = date(2026, 11, 23)


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def test_median_gap() -> None:
    assert median_gap([]) is None
    assert median_gap([ago(5)]) is None
    assert median_gap([ago(30), ago(0), ago(10)]) == 15.0  # gaps 20 and 10
    # Two orders on one day are one purchase.
    assert median_gap([ago(10), ago(10), ago(0)]) == 10.0


def test_no_counted_order_is_never_lapsed() -> None:
    status = lapse_status([], today=TODAY, population_gap=30)
    assert not status.lapsed
    assert status.threshold_days is None and status.last_order_date is None


@pytest.mark.parametrize(("days_since", "lapsed"), [(60, False), (61, True)])
def test_a_monthly_buyer_lapses_after_sixty_days(days_since: int, lapsed: bool) -> None:
    dates = [ago(days_since + 30 * n) for n in range(4)]
    status = lapse_status(dates, today=TODAY, population_gap=None)
    assert status.threshold_days == MIN_LAPSE_DAYS
    assert status.lapsed is lapsed


@pytest.mark.parametrize(("days_since", "lapsed"), [(180, False), (181, True)])
def test_a_quarterly_buyer_lapses_after_twice_their_gap(days_since: int, lapsed: bool) -> None:
    dates = [ago(days_since + 90 * n) for n in range(3)]
    status = lapse_status(dates, today=TODAY, population_gap=10)
    assert status.threshold_days == 180
    assert status.lapsed is lapsed


def test_a_single_purchase_uses_the_population_gap() -> None:
    assert lapse_status([ago(150)], today=TODAY, population_gap=100).threshold_days == 200
    assert not lapse_status([ago(150)], today=TODAY, population_gap=100).lapsed
    assert lapse_status([ago(150)], today=TODAY, population_gap=20).lapsed
    # No gap anywhere: the floor alone.
    assert lapse_status([ago(61)], today=TODAY, population_gap=None).lapsed


def test_orders_after_today_are_ignored() -> None:
    status = lapse_status([ago(100), TODAY + timedelta(days=3)], today=TODAY, population_gap=None)
    assert status.last_order_date == ago(100)
    assert status.lapsed


def _customer(session: Session, customer_id: str, owner: str, dates: list[tuple[date, str]]) -> None:
    session.add(Customer(customer_id=customer_id, name=f"客户{customer_id}", type="个人", owner_id=owner))
    session.flush()
    for n, (day, status) in enumerate(dates):
        session.add(
            Order(
                order_id=f"SO{customer_id[1:]}{n:08d}",
                customer_id=customer_id,
                order_date=day,
                status=status,
                amount=Decimal(100),
            )
        )
    session.flush()


def test_lapsed_customers_counts_only_real_purchases(session_factory: sessionmaker[Session]) -> None:
    clear_population_gap_cache()
    with session_factory() as session:
        session.add_all(
            [
                Employee(employee_id="E1", name="甲", role="sales", region="华东"),
                Employee(employee_id="E2", name="乙", role="sales", region="华北"),
            ]
        )
        # Monthly buyer, last real order 90 days ago; the recent ones were cancelled or refunded.
        _customer(
            session,
            "C1",
            "E1",
            [(ago(90 + 30 * n), "已签收") for n in range(3)] + [(ago(5), "已取消"), (ago(3), "已退款")],
        )
        # Monthly buyer who bought 20 days ago: fine.
        _customer(session, "C2", "E1", [(ago(20 + 30 * n), "已签收") for n in range(3)])
        # Another salesperson's lapsed customer.
        _customer(session, "C3", "E2", [(ago(200 + 30 * n), "已签收") for n in range(3)])
        # Never bought (only an unpaid order): not lapsed.
        _customer(session, "C4", "E1", [(ago(300), "待付款")])

        everyone = lapsed_customers(session, today=TODAY)
        assert [c.customer_id for c in everyone] == ["C3", "C1"]  # furthest past their rhythm first
        assert everyone[1].last_order_date == ago(90)
        assert everyone[1].days_since_last_order == 90
        assert everyone[1].threshold_days == 60

        mine = lapsed_customers(session, today=TODAY, scope=customer_scope(actor_for(session, "E1")))
        assert [c.customer_id for c in mine] == ["C1"]


def test_population_gap_is_the_median_of_everyones_gaps(session_factory: sessionmaker[Session]) -> None:
    clear_population_gap_cache()
    with session_factory() as session:
        session.add(Employee(employee_id="E1", name="甲", role="sales", region="华东"))
        _customer(
            session, "C1", "E1", [(ago(10), "已签收"), (ago(20), "已签收"), (ago(50), "已签收")]
        )  # 10, 30
        _customer(session, "C2", "E1", [(ago(100), "已签收"), (ago(300), "已签收")])  # 200
        _customer(session, "C3", "E1", [(ago(400), "已签收")])
        assert population_median_gap(session, today=TODAY, use_cache=False) == 30.0
        # C3's single purchase: threshold 2 × 30 = 60 → lapsed after 400 days.
        assert [c.customer_id for c in lapsed_customers(session, today=TODAY)] == ["C3"]


def test_population_gap_without_any_gap_is_none(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        session.add(Employee(employee_id="E1", name="甲", role="sales", region="华东"))
        _customer(session, "C1", "E1", [(ago(10), "已签收")])
        assert population_median_gap(session, today=TODAY, use_cache=False) is None


def test_demo_lapsed_customers_of_wang_li(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        lapsed = lapsed_customers(session, today=TODAY, scope=customer_scope(actor_for(session, "E02")))
        ids = {c.customer_id for c in lapsed}
        assert "C0001" not in ids  # bought on 2026-11-18
        assert ids and all(c.days_since_last_order > c.threshold_days >= MIN_LAPSE_DAYS for c in lapsed)
        owners = set(session.scalars(select(Customer.owner_id).where(Customer.customer_id.in_(ids))))
        assert owners == {"E02"}


# ------------------------------------------------ the store query against the reference `lapse_status`

_SIGNED = "已签收"

# Each customer: (owner, [(days ago, status, amount)]); negative days ago are after today.
_CRAFTED: dict[str, tuple[str, list[tuple[int, str, int]]]] = {
    # A single purchase day: the population gap decides (two orders that day, one order counted).
    "C01": ("E1", [(100, _SIGNED, 10), (100, _SIGNED, 20)]),
    "C02": ("E1", [(61, _SIGNED, 10)]),
    "C03": ("E2", [(400, _SIGNED, 10)]),
    # Same-day orders are one purchase day: days 70, 100 → gap 30, threshold 60, lapsed at 70.
    "C04": ("E1", [(70, _SIGNED, 5), (70, "已发货", 7), (100, _SIGNED, 11)]),
    # Uncounted statuses are no purchase: the last real one is 200 days ago.
    "C05": (
        "E1",
        [(200, _SIGNED, 1), (230, _SIGNED, 2), (5, "已取消", 50), (10, "待付款", 60), (20, "已退款", 70)],
    ),
    # Orders after today are ignored (they are not in count or spend either).
    "C06": ("E2", [(90, _SIGNED, 3), (120, _SIGNED, 4), (-5, _SIGNED, 99)]),
    "C07": ("E1", [(-10, _SIGNED, 99)]),
    # .5 medians: gaps 31 and 32 → 31.5 → threshold 63; lapsed at 64, not at 63.
    "C08": ("E1", [(63, _SIGNED, 1), (94, _SIGNED, 1), (126, _SIGNED, 1)]),
    "C09": ("E2", [(64, _SIGNED, 1), (95, _SIGNED, 1), (127, _SIGNED, 1)]),
    # Exactly at the threshold is not lapsed, one day more is: quarterly (180) and the floor (60).
    "C10": ("E1", [(180, _SIGNED, 1), (270, _SIGNED, 1), (360, _SIGNED, 1)]),
    "C11": ("E1", [(181, _SIGNED, 1), (271, _SIGNED, 1), (361, _SIGNED, 1)]),
    "C12": ("E2", [(60, _SIGNED, 1), (70, _SIGNED, 1), (80, _SIGNED, 1)]),
    "C13": ("E1", [(61, _SIGNED, 1), (71, _SIGNED, 1), (81, _SIGNED, 1)]),
    # An even number of gaps with a large spread (10, 20, 200, 400 → 110): threshold 220.
    "C14": (
        "E1",
        [(220, _SIGNED, 1), (620, _SIGNED, 1), (820, _SIGNED, 1), (840, _SIGNED, 1), (850, _SIGNED, 1)],
    ),
    "C15": (
        "E2",
        [(221, _SIGNED, 1), (621, _SIGNED, 1), (821, _SIGNED, 1), (841, _SIGNED, 1), (851, _SIGNED, 1)],
    ),
    # Never a counted order: never lapsed.
    "C16": ("E1", [(300, "待付款", 10), (400, "已取消", 10)]),
    "C17": ("E1", []),
    # Bought recently: not a candidate at all.
    "C18": ("E1", [(3, _SIGNED, 1), (400, _SIGNED, 1)]),
}


def _counted(orders: list[tuple[int, str, int]]) -> list[tuple[date, int]]:
    return [
        (ago(n), amount) for n, status, amount in orders if status not in COUNTED_EXCLUDED_STATUSES and n >= 0
    ]


def _store(session: Session, crafted: dict[str, tuple[str, list[tuple[int, str, int]]]]) -> None:
    session.add_all(
        [
            Employee(employee_id="E1", name="甲", role="sales", region="华东"),
            Employee(employee_id="E2", name="乙", role="sales", region="华北"),
        ]
    )
    session.flush()
    for customer_id, (owner, orders) in crafted.items():
        session.add(Customer(customer_id=customer_id, name=f"客户{customer_id}", type="个人", owner_id=owner))
        session.flush()
        for n, (days_ago, status, amount) in enumerate(orders):
            session.add(
                Order(
                    order_id=f"SO{customer_id[1:]}{n:08d}",
                    customer_id=customer_id,
                    order_date=ago(days_ago),
                    status=status,
                    amount=Decimal(amount),
                )
            )
    session.flush()


def _reference(
    crafted: dict[str, tuple[str, list[tuple[int, str, int]]]], owner: str | None
) -> tuple[float | None, list[LapsedCustomer]]:
    """The population gap and lapsed list straight from `median_gap`/`lapse_status`: the definition."""
    gaps: list[int] = []
    for _, orders in crafted.values():
        days = sorted({day for day, _ in _counted(orders)})
        gaps += [(later - earlier).days for earlier, later in zip(days, days[1:], strict=False)]
    population = float(statistics.median(gaps)) if gaps else None
    found = []
    for customer_id, (customer_owner, orders) in crafted.items():
        counted = _counted(orders)
        status = lapse_status([day for day, _ in counted], today=TODAY, population_gap=population)
        if status.lapsed and (owner is None or owner == customer_owner):
            assert status.last_order_date and status.days_since_last_order and status.threshold_days
            found.append(
                LapsedCustomer(
                    customer_id=customer_id,
                    name=f"客户{customer_id}",
                    last_order_date=status.last_order_date,
                    days_since_last_order=status.days_since_last_order,
                    threshold_days=status.threshold_days,
                    order_count=status.order_count,
                    spend=Decimal(sum(amount for _, amount in counted)),
                )
            )
    found.sort(key=lambda c: (-c.days_overdue, c.customer_id))
    return population, found


# Population gaps 61 and 62 (→ 61.5, threshold 123): single purchases at 123 and 124 days.
_HALF_POPULATION: dict[str, tuple[str, list[tuple[int, str, int]]]] = {
    "C01": ("E1", [(123, _SIGNED, 1)]),
    "C02": ("E2", [(124, _SIGNED, 1)]),
    "C03": ("E1", [(10, _SIGNED, 1), (71, _SIGNED, 1)]),
    "C04": ("E1", [(20, _SIGNED, 1), (82, _SIGNED, 1)]),
}


@pytest.mark.parametrize("crafted", [_CRAFTED, _HALF_POPULATION], ids=["crafted", "half-population"])
@pytest.mark.parametrize("owner", [None, "E1"])
def test_lapsed_customers_agree_with_lapse_status(
    session_factory: sessionmaker[Session],
    crafted: dict[str, tuple[str, list[tuple[int, str, int]]]],
    owner: str | None,
) -> None:
    """Each engine's implementation (one statement on PostgreSQL, streaming on SQLite) gives exactly
    what the reference definition gives: the same customers, days, thresholds, counts and spend."""
    clear_population_gap_cache()
    population, expected = _reference(crafted, owner)
    with session_factory() as session:
        _store(session, crafted)
        assert population_median_gap(session, today=TODAY, use_cache=False) == population
        scope = customer_scope(actor_for(session, owner)) if owner else None
        assert lapsed_customers(session, today=TODAY, scope=scope) == expected
    # The reference itself says what the cases are meant to show.
    lapsed_ids = {c.customer_id for c in expected}
    if crafted is _HALF_POPULATION:
        assert population == 61.5
        assert lapsed_ids == ({"C02"} if owner is None else set())
    else:
        assert population == 31.0  # threshold 62 for a single purchase day
        everyone = {"C01", "C03", "C04", "C05", "C06", "C09", "C11", "C13", "C15"}
        assert lapsed_ids == (everyone if owner is None else everyone - {"C03", "C06", "C09", "C15"})


@pytest.mark.parametrize("store_engine", ["postgresql"], indirect=True)
def test_the_set_based_statement_equals_the_streamed_path(session_factory: sessionmaker[Session]) -> None:
    """On PostgreSQL both implementations run on the same rows and give the same list."""
    clear_population_gap_cache()
    with session_factory() as session:
        _store(session, _CRAFTED)
        population = population_median_gap(session, today=TODAY)
        streamed = _lapsed_streamed(session, today=TODAY, scope=None, population=population)
        streamed.sort(key=lambda c: (-c.days_overdue, c.customer_id))
        assert lapsed_customers(session, today=TODAY) == streamed
        assert len(streamed) >= 8


@pytest.mark.parametrize(
    "values", [[1], [1, 2], [5, 1, 3], [4, 4, 1, 9], [2, 2, 2, 7, 7, 7], [10, 20, 30, 40, 41, 1000]]
)
def test_histogram_median_is_the_median(values: list[int]) -> None:
    histogram = Counter(values)
    assert _histogram_median(histogram.items()) == float(statistics.median(values))
    assert _histogram_median([]) is None
