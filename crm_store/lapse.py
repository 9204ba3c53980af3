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

`lapse_status` is a pure function of order dates and the reference definition of the rule: it is
tested without a database, and any caller holding the dates (the 360 view) applies it without
another query. `lapsed_customers` is the store query over a scope, in two implementations that
must agree with `lapse_status` (tests/store/test_lapse.py compares them on crafted data):

- **PostgreSQL: one set-based statement** (`lapsed_statement`). The candidates (last counted order
  more than `MIN_LAPSE_DAYS` ago) by a grouped pass; their counted orders in date order, read from
  the index `ix_orders_customer_id_order_date` (which includes status and amount: the table is
  not read); the gap to the previous order by a window `lag`, 0 within a purchase day and so
  dropped by NULLIF; one aggregate per customer: last day, `percentile_cont(0.5)` of the gaps
  (which ignores NULLs), count and spend; the threshold and the comparison. Only the lapsed rows
  come back, with their counted orders' count and spend, so `care.rules.lapse_events` needs no
  query per customer. At 1,000,000 customers and 10,000,000 orders this replaces a stream of every
  candidate's order dates into Python (bench/care_scale.py).
- **SQLite (small stores): streaming.** Candidates (last counted order more than `MIN_LAPSE_DAYS`
  ago) are kept in SQL, then their order rows are streamed customer by customer into
  `lapse_status`, so memory stays flat.

The population gap reads every counted order. On PostgreSQL the server returns only the histogram
of gaps (one row per distinct gap length, a few hundred), whose median Python takes exactly: no sort
of millions of gaps as `percentile_cont` over all of them needed (more than 50 minutes in one cold
run). It is cached per database and day for `POPULATION_GAP_TTL_S` seconds
(`clear_population_gap_cache` empties the cache).
"""

import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from sqlalchemy import ColumnElement, Date, Float, Integer, Select, cast, func, literal, select, type_coerce
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
    "lapsed_statement",
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


def _histogram_median(histogram: Iterable[tuple[int, int]]) -> float | None:
    """The median of the values counted by `(value, count)` pairs, as `statistics.median`; None if empty.

    Exact like `percentile_cont(0.5)`: the middle value, or the mean of the two middle ones.
    """
    pairs = sorted(histogram)
    total = sum(count for _, count in pairs)
    if total == 0:
        return None
    lower_rank, upper_rank = (total - 1) // 2, total // 2
    lower: int | None = None
    seen = 0
    for value, count in pairs:
        seen += count
        if lower is None and seen > lower_rank:
            lower = value
        if seen > upper_rank:
            return (lower + value) / 2 if lower is not None else float(value)
    return None  # unreachable: the last pair reaches `total`


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
    value: float | None
    if session.get_bind().dialect.name == "postgresql":
        # Millions of gaps but a few hundred distinct lengths: the server counts each length (a
        # hash aggregate, no sort of the gaps) and the exact median is read off the histogram. The
        # orders are read in index order (`ix_orders_customer_id_order_date`, status included) and
        # not made distinct first: the gap to the previous order is 0 within a purchase day, and
        # keeping the positive gaps keeps exactly those between consecutive purchase days.
        since_previous = Order.order_date - func.lag(Order.order_date, type_=Date).over(
            partition_by=Order.customer_id, order_by=Order.order_date
        )
        lengths = select(since_previous.label("gap")).where(counted_order_condition(today)).subquery()
        histogram = session.execute(
            select(lengths.c.gap, func.count()).where(lengths.c.gap > 0).group_by(lengths.c.gap)
        ).all()
        value = _histogram_median([(int(length), int(count)) for length, count in histogram])
    else:
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
    order_count: int = 0
    """Counted orders up to today (the lapse rule's `LapseStatus.order_count`)."""
    spend: Decimal = Decimal(0)
    """Their amount: read in the same pass, so a caller (the lapse nudge) needs no query per customer."""

    @property
    def days_overdue(self) -> int:
        """Days past the threshold: how far beyond their rhythm the customer is."""
        return self.days_since_last_order - self.threshold_days


def _grouped(
    rows: Iterable[tuple[str, str, date, Decimal]],
) -> Iterator[tuple[str, str, list[date], Decimal]]:
    current: str | None = None
    name = ""
    dates: list[date] = []
    spend = Decimal(0)
    for customer_id, customer_name, day, amount in rows:
        if customer_id != current:
            if current is not None:
                yield current, name, dates, spend
            current, name, dates, spend = customer_id, customer_name, [], Decimal(0)
        dates.append(day)
        spend += amount
    if current is not None:
        yield current, name, dates, spend


def _in_scope(scope: ColumnElement[bool] | None) -> ColumnElement[bool] | None:
    """A WHERE condition on `Order` keeping the orders of customers in `scope` (None: everyone)."""
    if scope is None:
        return None
    return Order.customer_id.in_(select(Customer.customer_id).where(scope))


def _lapsed_streamed(
    session: Session, *, today: date, scope: ColumnElement[bool] | None, population: float | None
) -> list[LapsedCustomer]:
    """Candidates kept in SQL, their order rows streamed into `lapse_status` (SQLite, small stores)."""
    counted = counted_order_condition(today)
    last_orders = (
        select(Order.customer_id)
        .where(counted)
        .group_by(Order.customer_id)
        .having(func.max(Order.order_date) < today - timedelta(days=MIN_LAPSE_DAYS))
    )
    scoped = _in_scope(scope)
    if scoped is not None:
        last_orders = last_orders.where(scoped)
    candidates = last_orders.subquery()
    rows = session.execute(
        select(Customer.customer_id, Customer.name, Order.order_date, Order.amount)
        .join(Order, Order.customer_id == Customer.customer_id)
        .where(Customer.customer_id.in_(select(candidates.c.customer_id)), counted)
        .order_by(Customer.customer_id, Order.order_date)
        .execution_options(yield_per=_STREAM_BATCH)
    )
    found: list[LapsedCustomer] = []
    for customer_id, name, dates, spend in _grouped(rows):
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
                    order_count=status.order_count,
                    spend=spend,
                )
            )
    return found


def lapsed_statement(
    *, today: date, scope: ColumnElement[bool] | None, population: float | None
) -> Select[str, str, date, int, int, int, Decimal]:
    """The lapse rule as one PostgreSQL statement: (customer_id, name, last day, days since, threshold,
    order count, spend) of each lapsed customer in `scope`, unordered.

    Two index-only passes over the counted orders, both in `ix_orders_customer_id_order_date` order
    (it includes status and amount, so the table is not read): the first keeps the candidates, the
    customers without a purchase in `MIN_LAPSE_DAYS`; the second walks only their orders through a
    window `lag` into one aggregate per customer. No order date reaches Python and no query runs
    per customer; count and spend ride along for the lapse nudge.
    """
    counted = counted_order_condition(today)
    candidates = (
        select(Order.customer_id.label("customer_id"))
        .where(counted)
        .group_by(Order.customer_id)
        .having(func.max(Order.order_date) < today - timedelta(days=MIN_LAPSE_DAYS))
    )
    scoped = _in_scope(scope)
    if scoped is not None:
        candidates = candidates.where(scoped)
    kept = candidates.subquery("candidates")
    previous = func.lag(Order.order_date, type_=Date).over(
        partition_by=Order.customer_id, order_by=Order.order_date
    )
    # Days since the customer's previous order: 0 between two orders of the same day, which are one
    # purchase day, so NULLIF(gap, 0) leaves exactly the gaps between consecutive purchase days (and
    # NULL on the first order, as `lag` gives).
    orders = (
        select(
            Order.customer_id.label("customer_id"),
            Order.order_date.label("day"),
            Order.amount.label("amount"),
            (Order.order_date - previous).label("gap"),
        )
        .join(kept, kept.c.customer_id == Order.customer_id)
        .where(counted)
        .subquery("counted_orders")
    )
    # percentile_cont ignores NULLs: NULL (no gap of their own) for a single purchase day.
    own_gap = type_coerce(func.percentile_cont(0.5).within_group(func.nullif(orders.c.gap, 0)), Float)
    per_customer = (
        select(
            orders.c.customer_id,
            func.max(orders.c.day).label("last_day"),
            own_gap.label("own_gap"),
            func.count().label("order_count"),
            func.sum(orders.c.amount).label("spend"),
        )
        .group_by(orders.c.customer_id)
        .subquery("per_customer")
    )
    # max(60, 2 × gap), 2 × a median of whole days being whole; no gap at all: the floor alone.
    gap = func.coalesce(per_customer.c.own_gap, literal(population, Float))
    threshold = func.greatest(
        MIN_LAPSE_DAYS, func.coalesce(cast(GAP_FACTOR * gap, Integer), MIN_LAPSE_DAYS), type_=Integer
    )
    since = literal(today, Date) - per_customer.c.last_day
    return (
        select(
            per_customer.c.customer_id,
            Customer.name,
            per_customer.c.last_day,
            since.label("since"),
            threshold.label("threshold"),
            per_customer.c.order_count,
            per_customer.c.spend,
        )
        .join(Customer, Customer.customer_id == per_customer.c.customer_id)
        .where(since > threshold)
    )


def lapsed_customers(
    session: Session, *, today: date, scope: ColumnElement[bool] | None = None
) -> list[LapsedCustomer]:
    """The lapsed customers (module docstring) among `scope`, furthest past their rhythm first.

    One set-based statement on PostgreSQL (`lapsed_statement`), streaming into `lapse_status`
    elsewhere; both give the same list.

    Args:
        session: An open session.
        today: The reference day.
        scope: A WHERE condition on `Customer` (e.g. `crm_store.access.customer_scope(actor)`);
            every customer when None.
    """
    # Read first: one statement at a time on the connection (and cached for the day).
    population = population_median_gap(session, today=today)
    if session.get_bind().dialect.name == "postgresql":
        found = [
            LapsedCustomer(
                customer_id=customer_id,
                name=name,
                last_order_date=last_day,
                days_since_last_order=int(since),
                threshold_days=int(threshold),
                order_count=int(count),
                spend=Decimal(spend or 0),
            )
            for customer_id, name, last_day, since, threshold, count, spend in session.execute(
                lapsed_statement(today=today, scope=scope, population=population)
            )
        ]
    else:
        found = _lapsed_streamed(session, today=today, scope=scope, population=population)
    # Sorted here, not in SQL: the same order on both engines whatever the collation.
    found.sort(key=lambda c: (-c.days_overdue, c.customer_id))
    return found
