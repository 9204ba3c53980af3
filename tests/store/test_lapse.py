"""The one lapse rule: pure on order dates, and its store wrapper over a scope."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import actor_for, customer_scope
from crm_store.lapse import (
    MIN_LAPSE_DAYS,
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
