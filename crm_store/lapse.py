"""The one lapse rule: which customers have stopped buying. Reminders and proactive care both use it.

The rule (issue 16, reused by issue 17):

- Only **counted orders** count: every order dated up to today except unpaid, cancelled and refunded
  ones (`COUNTED_EXCLUDED_STATUSES`, the same set as the spend of the value tier).
- A customer's **usual gap** is the median number of days between their consecutive counted orders
  (orders of the same day are one purchase). A customer with a single counted order has no gap of
  their own and is given the **population gap**: the median of all customers' gaps
  (`population_median_gap`); with no gap anywhere, `MIN_LAPSE_DAYS` alone applies.
- A customer is **lapsed** when the days since their last counted order exceed
  `max(MIN_LAPSE_DAYS, GAP_FACTOR × usual gap)`, i.e. more than 60 days and more than twice
  their own rhythm: a monthly buyer is lapsed after two months, a quarterly one after six.
- A customer with no counted order is never lapsed (they are a prospect, not a lost customer).

`lapse_status` is a pure function of order dates, so the rule is tested without a database and any
caller holding the dates (the 360 view) applies it without another query. `lapsed_customers` is
the store query wrapper over a scope: it first keeps, in SQL, the customers whose last counted
order is more than `MIN_LAPSE_DAYS` ago (nobody else can be lapsed), then streams only their order
dates, customer by customer, so that memory stays flat at millions of orders.

The population gap reads every counted order; it is cached per database and day for
`POPULATION_GAP_TTL_S` seconds (`clear_population_gap_cache` empties the cache).
"""

import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from sqlalchemy import ColumnElement, Date, func, select
from sqlalchemy.orm import Session

from crm_store.models import Customer, Order

__all__ = [
    "COUNTED_EXCLUDED_STATUSES",
    "GAP_FACTOR",
    "MIN_LAPSE_DAYS",
    "LapseStatus",
    "LapsedCustomer",
    "clear_population_gap_cache",
    "counted_order_condition",
    "lapse_status",
    "lapsed_customers",
    "median_gap",
    "population_median_gap",
]

MIN_LAPSE_DAYS: Final = 60
"""Nobody is lapsed within 60 days of a purchase, however often they used to buy."""

GAP_FACTOR: Final = 2
"""Lapsed after twice one's usual gap between purchases."""

COUNTED_EXCLUDED_STATUSES: Final = frozenset({"待付款", "已取消", "已退款"})
"""Orders that are not purchases: unpaid, cancelled or refunded (as `customers.SPEND_EXCLUDED_STATUSES`)."""

POPULATION_GAP_TTL_S: Final = 3600.0
"""How long the population gap of one database and day is reused before it is read again."""

_STREAM_BATCH: Final = 5000


def counted_order_condition(today: date) -> ColumnElement[bool]:
    """A WHERE condition on `Order` keeping the counted orders up to `today`."""
    return (Order.status.not_in(sorted(COUNTED_EXCLUDED_STATUSES))) & (Order.order_date <= today)


def _purchase_days(order_dates: Iterable[date], today: date) -> list[date]:
    return sorted({day for day in order_dates if day <= today})


def median_gap(order_dates: Iterable[date]) -> float | None:
    """The median of days between consecutive purchase days, or None with fewer than two days."""
    days = sorted(set(order_dates))
    if len(days) < 2:
        return None
    return float(
        statistics.median((later - earlier).days for earlier, later in zip(days, days[1:], strict=False))
    )


@dataclass(frozen=True)
class LapseStatus:
    """What the lapse rule says about one customer.

    `threshold_days` is `max(MIN_LAPSE_DAYS, GAP_FACTOR × usual gap)`; None (with everything else
    None and `lapsed` False) for a customer without a counted order.
    """

    lapsed: bool
    last_order_date: date | None
    days_since_last_order: int | None
    usual_gap_days: float | None
    threshold_days: int | None
    order_count: int


def lapse_status(order_dates: Sequence[date], *, today: date, population_gap: float | None) -> LapseStatus:
    """The lapse rule (module docstring) for one customer's counted order dates.

    Args:
        order_dates: The dates of the customer's counted orders, in any order; later than today are ignored.
        today: The reference day.
        population_gap: The median gap of all customers, for a customer with a single purchase day.
    """
    days = _purchase_days(order_dates, today)
    count = sum(1 for day in order_dates if day <= today)
    if not days:
        return LapseStatus(False, None, None, None, None, count)
    own = median_gap(days)
    gap = own if own is not None else population_gap
    threshold = max(MIN_LAPSE_DAYS, round(GAP_FACTOR * gap)) if gap is not None else MIN_LAPSE_DAYS
    since = (today - days[-1]).days
    return LapseStatus(
        lapsed=since > threshold,
        last_order_date=days[-1],
        days_since_last_order=since,
        usual_gap_days=gap,
        threshold_days=threshold,
        order_count=count,
    )


_gap_cache: dict[tuple[str, date], tuple[float, float | None]] = {}


def clear_population_gap_cache() -> None:
    """Forget every cached population gap (e.g. after a bulk import)."""
    _gap_cache.clear()


def _database_key(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=True)


def population_median_gap(session: Session, *, today: date, use_cache: bool = True) -> float | None:
    """The median of every gap between consecutive purchase days of every customer, or None.

    Cached per database and day (`POPULATION_GAP_TTL_S`): it reads all counted orders.
    """
    key = (_database_key(session), today)
    cached = _gap_cache.get(key)
    if use_cache and cached is not None and time.monotonic() - cached[0] < POPULATION_GAP_TTL_S:
        return cached[1]
    purchases = (
        select(Order.customer_id, Order.order_date)
        .where(counted_order_condition(today))
        .distinct()
        .subquery()
    )
    previous = func.lag(purchases.c.order_date, type_=Date).over(
        partition_by=purchases.c.customer_id, order_by=purchases.c.order_date
    )
    pairs = select(purchases.c.order_date.label("day"), previous.label("previous")).subquery()
    value: float | None
    if session.get_bind().dialect.name == "postgresql":
        # Millions of gaps: let the server take the median rather than ship them all.
        gap = pairs.c.day - pairs.c.previous
        median = func.percentile_cont(0.5).within_group(gap)
        found = session.scalar(select(median).where(pairs.c.previous.is_not(None)))
        value = float(found) if found is not None else None
    else:
        gaps = [
            (day - earlier).days
            for day, earlier in session.execute(
                select(pairs.c.day, pairs.c.previous).where(pairs.c.previous.is_not(None))
            )
        ]
        value = float(statistics.median(gaps)) if gaps else None
    _gap_cache[key] = (time.monotonic(), value)
    return value


@dataclass(frozen=True)
class LapsedCustomer:
    """A lapsed customer, as reminders list them (no personal data but the name staff already see)."""

    customer_id: str
    name: str
    last_order_date: date
    days_since_last_order: int
    threshold_days: int

    @property
    def days_overdue(self) -> int:
        """Days past the threshold: how far beyond their rhythm the customer is."""
        return self.days_since_last_order - self.threshold_days


def _grouped(rows: Iterable[tuple[str, str, date]]) -> Iterator[tuple[str, str, list[date]]]:
    current: str | None = None
    name = ""
    dates: list[date] = []
    for customer_id, customer_name, day in rows:
        if customer_id != current:
            if current is not None:
                yield current, name, dates
            current, name, dates = customer_id, customer_name, []
        dates.append(day)
    if current is not None:
        yield current, name, dates


def lapsed_customers(
    session: Session, *, today: date, scope: ColumnElement[bool] | None = None
) -> list[LapsedCustomer]:
    """The lapsed customers (module docstring) among `scope`, furthest past their rhythm first.

    Args:
        session: An open session.
        today: The reference day.
        scope: A WHERE condition on `Customer` (e.g. `crm_store.access.customer_scope(actor)`);
            every customer when None.
    """
    counted = counted_order_condition(today)
    last_orders = (
        select(Order.customer_id)
        .where(counted)
        .group_by(Order.customer_id)
        .having(func.max(Order.order_date) < date.fromordinal(today.toordinal() - MIN_LAPSE_DAYS))
    )
    if scope is not None:
        last_orders = last_orders.where(Order.customer_id.in_(select(Customer.customer_id).where(scope)))
    candidates = last_orders.subquery()
    # Read before the stream opens: one statement at a time on the connection.
    population = population_median_gap(session, today=today)
    rows = session.execute(
        select(Customer.customer_id, Customer.name, Order.order_date)
        .join(Order, Order.customer_id == Customer.customer_id)
        .where(Customer.customer_id.in_(select(candidates.c.customer_id)), counted)
        .order_by(Customer.customer_id, Order.order_date)
        .execution_options(yield_per=_STREAM_BATCH)
    )
    found: list[LapsedCustomer] = []
    for customer_id, name, dates in _grouped(rows):
        status = lapse_status(dates, today=today, population_gap=population)
        if (
            status.lapsed
            and status.last_order_date is not None
            and status.days_since_last_order is not None
            and status.threshold_days is not None
        ):
            found.append(
                LapsedCustomer(
                    customer_id=customer_id,
                    name=name,
                    last_order_date=status.last_order_date,
                    days_since_last_order=status.days_since_last_order,
                    threshold_days=status.threshold_days,
                )
            )
    found.sort(key=lambda c: (-c.days_overdue, c.customer_id))
    return found
