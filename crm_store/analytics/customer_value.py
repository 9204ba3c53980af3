"""Customer value and risk: RFM, value tier, lifecycle, CLV and churn risk of every customer.

docs/analytics.md (section 客户价值与风险) gives every formula with a worked example; in short, as of
a day `today`, over the **counted orders** (every status but 待付款, 已取消, 已退款, dated up to today:
`crm_store.lapse.counted_order_condition`) and a **window** of `CRM_ANALYTICS_WINDOW_MONTHS` (12)
months (orders dated after the same day 12 months ago, `window_start`):

- **RFM.** recency = days since the last counted order (any date); frequency = counted orders in
  the window; monetary = their amount. Scored 1 to `CRM_ANALYTICS_RFM_BUCKETS` (5: quintiles, 5
  the best) among the customers with a counted order in the window, by `bucket_score`:
  1 + ⌊buckets × worse / scored⌋, *worse* being how many scored customers are strictly worse
  (older last order; fewer orders; less spend). **Ties share a score**, the one of the first of
  them (a rank with gaps), so that the many customers with one order all get F = 1 instead of
  being split arbitrarily as NTILE would. Without a counted order in the window: all three None.
- **Value tier** by cumulative revenue share (`tier_by_revenue_share`): customers sorted by window
  spend, largest first; one is 关键 when the customers who spent strictly more made less than
  80 % of the window's revenue (so the one crossing the 80 % line is 关键 too), 普通 when they made
  less than 80 + 15 %, else 小客户; nobody who spent nothing is above 小客户. Equal spends share a
  tier. The shares are settings (80/15/5).
- **Lifecycle** (`lifecycle_status`): 潜在 no counted order; 已流失 none in the last 365 days;
  流失预警 lapsed by the one lapse rule (`crm_store.lapse`); 忠实 at least 5 in the last 365 days;
  回头客 2 or more in all; 新客 one. The 360 view applies the same function.
- **Churn risk** (`churn_risk`): 1 / (1 + e^(−k·(d − t)/t)), d the days since the last counted
  order and t the customer's lapse threshold (`crm_store.lapse.lapse_status`), k
  `CRM_ANALYTICS_CHURN_STEEPNESS` (4). Exactly 0.5 at the threshold, so **lapsed ⇔ risk > 0.5**;
  0.018 on the day of a purchase, 0.98 at twice the threshold. No counted order: 0 (a prospect
  has not started buying, so there is nothing to lose yet).
- **CLV** (`lifetime_value`): yearly margin × discounted expected lifetime. Yearly margin =
  average order margin (monetary / frequency × margin 0.3) × yearly purchase rate (frequency /
  window years) = monetary × margin / window years. With p the churn risk taken as the yearly
  probability of leaving and d the discount rate (10 %), the margin of year n (n = 0, 1, …) is
  received with probability (1 − p)ⁿ and worth 1/(1 + d)ⁿ today: Σ ((1 − p)/(1 + d))ⁿ =
  (1 + d)/(d + p) years. Example: 12,000 元 in 4 orders over 12 months, p = 0.2 → 900 元 margin
  per order × 4 a year = 3,600 元 a year × 1.1/0.3 = 3.667 years = 13,200.00 元.

`refresh_scores` writes every customer's row of `customer_scores` (the snapshot the 360 view and
the questions grouped by 客户等级 read): on PostgreSQL one INSERT … SELECT over grouped orders and
window functions (rank, running sums), so a million customers take minutes; on SQLite (small
stores) the counted orders are streamed customer by customer into the same pure functions.
`customer_value_tier` reads one customer's tier from their row, or computes it with the same rule
when they have none yet. `csat_average` is the tickets' mean rating over an actor's scope (the
service metrics'); 复购率 is the semantic layer's (`crm_store.analytics.query`), not repeated here.
"""

import calendar
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import (
    Date,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from crm_store.access import ALL_REGIONS, Actor, customer_scope, require_staff
from crm_store.clock import TZ
from crm_store.errors import NotFound
from crm_store.lapse import (
    GAP_FACTOR,
    MIN_LAPSE_DAYS,
    counted_order_condition,
    lapse_status,
    population_median_gap,
)
from crm_store.models import Customer, CustomerScore, Order, Ticket
from crm_store.settings import AnalyticsSettings, get_analytics_settings
from crm_store.vocab import VALUE_TIER_KEY, VALUE_TIER_NORMAL, VALUE_TIER_SMALL

__all__ = [
    "LIFECYCLE_AT_RISK",
    "LIFECYCLE_LOST",
    "LIFECYCLE_LOYAL",
    "LIFECYCLE_NEW",
    "LIFECYCLE_PROSPECT",
    "LIFECYCLE_RETURNING",
    "LIFECYCLE_STATUSES",
    "LOST_AFTER_DAYS",
    "LOYAL_ORDERS_PER_YEAR",
    "CsatAverage",
    "CustomerFacts",
    "ScoreRow",
    "bucket_score",
    "churn_risk",
    "compute_value_tier",
    "csat_average",
    "customer_value_tier",
    "lifecycle_status",
    "lifetime_value",
    "months_before",
    "refresh_scores",
    "score_customers",
    "tier_by_revenue_share",
    "unscored_customer",
    "window_start",
]

logger = logging.getLogger(__name__)

LIFECYCLE_PROSPECT: Final = "潜在"
LIFECYCLE_NEW: Final = "新客"
LIFECYCLE_RETURNING: Final = "回头客"
LIFECYCLE_LOYAL: Final = "忠实"
LIFECYCLE_AT_RISK: Final = "流失预警"
LIFECYCLE_LOST: Final = "已流失"
LIFECYCLE_STATUSES: Final = (
    LIFECYCLE_PROSPECT,
    LIFECYCLE_NEW,
    LIFECYCLE_RETURNING,
    LIFECYCLE_LOYAL,
    LIFECYCLE_AT_RISK,
    LIFECYCLE_LOST,
)
LOYAL_ORDERS_PER_YEAR: Final = 5
"""Counted orders in the last 365 days that make a customer 忠实."""
LOST_AFTER_DAYS: Final = 365
"""No counted order in this many days: 已流失."""

_CENT: Final = Decimal("0.01")
_STREAM_BATCH: Final = 5000
_INSERT_BATCH: Final = 2000

# --------------------------------------------------------------------------------------------------
# The rules, as pure functions.


def months_before(day: date, months: int) -> date:
    """The same day `months` months earlier; 31 March minus one month is the last day of February."""
    year, month_index = divmod(day.year * 12 + day.month - 1 - months, 12)
    last_day = calendar.monthrange(year, month_index + 1)[1]
    return date(year, month_index + 1, min(day.day, last_day))


def window_start(today: date, settings: AnalyticsSettings | None = None) -> date:
    """The day before the value window: orders dated after it, up to today, are in the window."""
    settings = settings or get_analytics_settings()
    return months_before(today, settings.analytics_window_months)


def lifecycle_status(
    *, counted_orders: int, orders_last_year: int, last_order: date | None, lapsed: bool, today: date
) -> str:
    """The lifecycle status (module docstring); `orders_last_year` counts orders dated after today − 365."""
    if counted_orders == 0 or last_order is None:
        return LIFECYCLE_PROSPECT
    if (today - last_order).days > LOST_AFTER_DAYS:
        return LIFECYCLE_LOST
    if lapsed:
        return LIFECYCLE_AT_RISK
    if orders_last_year >= LOYAL_ORDERS_PER_YEAR:
        return LIFECYCLE_LOYAL
    if counted_orders >= 2:
        return LIFECYCLE_RETURNING
    return LIFECYCLE_NEW


def bucket_score(worse: int, scored: int, buckets: int = 5) -> int:
    """1 to `buckets`: 1 + ⌊buckets × worse / scored⌋, `worse` scored customers being strictly worse."""
    return 1 + (buckets * worse) // scored


def tier_by_revenue_share(
    spend: Decimal, spend_above: Decimal, total: Decimal, settings: AnalyticsSettings | None = None
) -> str:
    """关键, 普通 or 小客户 by cumulative revenue share (module docstring).

    Args:
        spend: The customer's spend in the window.
        spend_above: What the customers who spent strictly more spent together.
        total: The window's revenue (every customer's spend).
    """
    settings = settings or get_analytics_settings()
    if spend <= 0 or total <= 0:
        return VALUE_TIER_SMALL
    key = Decimal(str(settings.analytics_key_share))
    if spend_above < key * total:
        return VALUE_TIER_KEY
    if spend_above < (key + Decimal(str(settings.analytics_normal_share))) * total:
        return VALUE_TIER_NORMAL
    return VALUE_TIER_SMALL


def churn_risk(
    days_since_last_order: int | None, threshold_days: int | None, steepness: float = 4.0
) -> float:
    """0 to 1, exactly 0.5 at the lapse threshold and above it once lapsed; 0 without a counted order."""
    if days_since_last_order is None or threshold_days is None or threshold_days <= 0:
        return 0.0
    # (d − t)/t ≥ −1, so the exponent stays below `steepness`: no overflow.
    return 1.0 / (1.0 + math.exp(-steepness * (days_since_last_order - threshold_days) / threshold_days))


def lifetime_value(monetary: Decimal, risk: float, settings: AnalyticsSettings | None = None) -> Decimal:
    """CLV in 元 to the cent: monetary × margin / window years × (1 + d)/(d + risk) (module docstring)."""
    settings = settings or get_analytics_settings()
    if monetary <= 0:
        return Decimal("0.00")
    yearly_margin = monetary * Decimal(str(settings.analytics_margin)) * 12 / settings.analytics_window_months
    discount = Decimal(str(settings.analytics_discount_rate))
    lifetime = (1 + discount) / (discount + Decimal(repr(risk)))
    return (yearly_margin * lifetime).quantize(_CENT, rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------------------------------
# Every customer's scores.


@dataclass(frozen=True)
class ScoreRow:
    """One customer's figures as `customer_scores` holds them."""

    customer_id: str
    recency_days: int | None
    frequency: int
    monetary: Decimal
    r_score: int | None
    f_score: int | None
    m_score: int | None
    value_tier: str
    lifecycle: str
    clv: Decimal
    churn_risk: float


@dataclass(frozen=True)
class CustomerFacts:
    """What one customer's counted orders say, before ranking."""

    customer_id: str
    recency_days: int | None
    frequency: int
    monetary: Decimal
    lifecycle: str
    churn_risk: float


def _facts(
    customer_id: str,
    orders: Sequence[tuple[date, Decimal]],
    *,
    today: date,
    start: date,
    population_gap: float | None,
    settings: AnalyticsSettings,
) -> CustomerFacts:
    """One customer's facts from their counted orders (dated up to today), by the module's rules."""
    status = lapse_status([day for day, _ in orders], today=today, population_gap=population_gap)
    in_window = [amount for day, amount in orders if day > start]
    year_ago = today - timedelta(days=LOST_AFTER_DAYS)
    return CustomerFacts(
        customer_id=customer_id,
        recency_days=status.days_since_last_order,
        frequency=len(in_window),
        monetary=sum(in_window, Decimal(0)).quantize(_CENT),
        lifecycle=lifecycle_status(
            counted_orders=status.order_count,
            orders_last_year=sum(1 for day, _ in orders if day > year_ago),
            last_order=status.last_order_date,
            lapsed=status.lapsed,
            today=today,
        ),
        churn_risk=churn_risk(
            status.days_since_last_order, status.threshold_days, settings.analytics_churn_steepness
        ),
    )


def _strictly_worse(values: Sequence[Decimal | int]) -> list[int]:
    """For each value, how many values are strictly smaller (worse): ties are not worse than each other."""
    ordered = sorted(values)
    first_position: dict[Decimal | int, int] = {}
    for position, value in enumerate(ordered):
        first_position.setdefault(value, position)
    return [first_position[value] for value in values]


def score_customers(
    facts: Iterable[CustomerFacts], settings: AnalyticsSettings | None = None
) -> list[ScoreRow]:
    """Rank the customers' facts into RFM scores, value tiers and CLV (the reference implementation)."""
    settings = settings or get_analytics_settings()
    buckets = settings.analytics_rfm_buckets
    everyone = list(facts)
    scored = [f for f in everyone if f.frequency > 0]
    # A more recent last order is better: fewer days, so the days are negated.
    r_worse = _strictly_worse([-(f.recency_days or 0) for f in scored])
    f_worse = _strictly_worse([f.frequency for f in scored])
    m_worse = _strictly_worse([f.monetary for f in scored])
    total = sum((f.monetary for f in scored), Decimal(0))
    # What the customers spending strictly more spent: a running sum over distinct spends.
    spenders = Counter(f.monetary for f in scored)
    above: dict[Decimal, Decimal] = {}
    running = Decimal(0)
    for spend in sorted(spenders, reverse=True):
        above[spend] = running
        running += spend * spenders[spend]
    ranks = {
        f.customer_id: (
            bucket_score(r, len(scored), buckets),
            bucket_score(fr, len(scored), buckets),
            bucket_score(m, len(scored), buckets),
        )
        for f, r, fr, m in zip(scored, r_worse, f_worse, m_worse, strict=True)
    }
    rows = []
    for f in everyone:
        r_score, f_score, m_score = ranks.get(f.customer_id, (None, None, None))
        rows.append(
            ScoreRow(
                customer_id=f.customer_id,
                recency_days=f.recency_days,
                frequency=f.frequency,
                monetary=f.monetary,
                r_score=r_score,
                f_score=f_score,
                m_score=m_score,
                value_tier=tier_by_revenue_share(f.monetary, above.get(f.monetary, total), total, settings),
                lifecycle=f.lifecycle,
                clv=lifetime_value(f.monetary, f.churn_risk, settings),
                churn_risk=f.churn_risk,
            )
        )
    return rows


def _streamed_facts(
    session: Session,
    *,
    today: date,
    settings: AnalyticsSettings,
    population_gap: float | None,
    progress: Callable[[int], None] | None,
) -> Iterator[CustomerFacts]:
    """Every customer's facts, their counted orders streamed customer by customer (SQLite)."""
    start = window_start(today, settings)
    counted = counted_order_condition(today)
    rows = session.execute(
        select(Customer.customer_id, Order.order_date, Order.amount)
        .outerjoin(Order, (Order.customer_id == Customer.customer_id) & counted)
        .order_by(Customer.customer_id, Order.order_date)
        .execution_options(yield_per=_STREAM_BATCH)
    )
    current: str | None = None
    orders: list[tuple[date, Decimal]] = []
    done = 0
    for customer_id, day, amount in rows:
        if customer_id != current:
            if current is not None:
                yield _facts(
                    current,
                    orders,
                    today=today,
                    start=start,
                    population_gap=population_gap,
                    settings=settings,
                )
                done += 1
                if progress is not None and done % _STREAM_BATCH == 0:
                    progress(done)
            current, orders = customer_id, []
        if day is not None:
            orders.append((day, Decimal(amount)))
    if current is not None:
        yield _facts(
            current, orders, today=today, start=start, population_gap=population_gap, settings=settings
        )


def _scores_statement(
    *, today: date, settings: AnalyticsSettings, population_gap: float | None
) -> Select[Any]:
    """Every customer's scores as one SELECT (PostgreSQL): the same rules as `score_customers`."""
    start = window_start(today, settings)
    year_ago = today - timedelta(days=LOST_AFTER_DAYS)
    counted = counted_order_condition(today)
    previous = func.lag(Order.order_date, type_=Date).over(
        partition_by=Order.customer_id, order_by=Order.order_date
    )
    orders = (
        select(
            Order.customer_id.label("customer_id"),
            Order.order_date.label("day"),
            Order.amount.label("amount"),
            (Order.order_date - previous).label("gap"),
        )
        .where(counted)
        .subquery("counted_orders")
    )
    in_window = orders.c.day > start
    own_gap = type_coerce(func.percentile_cont(0.5).within_group(func.nullif(orders.c.gap, 0)), Float)
    per_customer = (
        select(
            orders.c.customer_id,
            func.max(orders.c.day).label("last_day"),
            func.count().label("all_orders"),
            func.count().filter(orders.c.day > year_ago).label("year_orders"),
            func.count().filter(in_window).label("frequency"),
            func.coalesce(func.sum(orders.c.amount).filter(in_window), 0).label("monetary"),
            own_gap.label("own_gap"),
        )
        .group_by(orders.c.customer_id)
        .subquery("per_customer")
    )
    # The lapse rule's threshold, as `crm_store.lapse.lapsed_statement` computes it.
    gap = func.coalesce(per_customer.c.own_gap, literal(population_gap, Float))
    threshold = func.greatest(
        MIN_LAPSE_DAYS, func.coalesce(cast(GAP_FACTOR * gap, Integer), MIN_LAPSE_DAYS), type_=Integer
    )
    since = literal(today, Date) - per_customer.c.last_day
    frequency = func.coalesce(per_customer.c.frequency, 0)
    monetary = cast(func.coalesce(per_customer.c.monetary, 0), Numeric(14, 2))
    facts = (
        select(
            Customer.customer_id.label("customer_id"),
            per_customer.c.last_day,
            since.label("since"),
            threshold.label("threshold"),
            func.coalesce(per_customer.c.all_orders, 0).label("all_orders"),
            func.coalesce(per_customer.c.year_orders, 0).label("year_orders"),
            frequency.label("frequency"),
            monetary.label("monetary"),
            (frequency > 0).label("scored"),
        )
        .outerjoin(per_customer, per_customer.c.customer_id == Customer.customer_id)
        .subquery("facts")
    )
    scored = facts.c.scored
    buckets = settings.analytics_rfm_buckets
    n_scored = func.count().over(partition_by=scored)

    def score(order_by: Any) -> Any:
        # rank() − 1 = how many of the scored are strictly worse: ties share a score.
        worse = func.rank().over(partition_by=scored, order_by=order_by) - 1
        return case((scored, 1 + (buckets * worse) // n_scored), else_=None)

    total = func.sum(facts.c.monetary).over(partition_by=scored)
    # RANGE frame (the default): the running sum includes every equal spend; taking those away
    # leaves what the customers who spent strictly more spent.
    above = func.sum(facts.c.monetary).over(partition_by=scored, order_by=facts.c.monetary.desc()) - func.sum(
        facts.c.monetary
    ).over(partition_by=(scored, facts.c.monetary))
    ranked = select(
        facts,
        score(facts.c.since.desc()).label("r_score"),
        score(facts.c.frequency.asc()).label("f_score"),
        score(facts.c.monetary.asc()).label("m_score"),
        total.label("total"),
        above.label("above"),
    ).subquery("ranked")
    key = literal(Decimal(str(settings.analytics_key_share)), Numeric(6, 4))
    normal = literal(Decimal(str(settings.analytics_normal_share)), Numeric(6, 4))
    tier = case(
        (~ranked.c.scored, VALUE_TIER_SMALL),
        (ranked.c.above < key * ranked.c.total, VALUE_TIER_KEY),
        (ranked.c.above < (key + normal) * ranked.c.total, VALUE_TIER_NORMAL),
        else_=VALUE_TIER_SMALL,
    )
    lifecycle = case(
        (ranked.c.last_day.is_(None), LIFECYCLE_PROSPECT),
        (ranked.c.since > LOST_AFTER_DAYS, LIFECYCLE_LOST),
        (ranked.c.since > ranked.c.threshold, LIFECYCLE_AT_RISK),
        (ranked.c.year_orders >= LOYAL_ORDERS_PER_YEAR, LIFECYCLE_LOYAL),
        (ranked.c.all_orders >= 2, LIFECYCLE_RETURNING),
        else_=LIFECYCLE_NEW,
    )
    steepness = literal(settings.analytics_churn_steepness, Float)
    risk = case(
        (ranked.c.last_day.is_(None), literal(0.0, Float)),
        else_=1.0
        / (
            1.0
            + func.exp(
                -steepness
                * cast(ranked.c.since - ranked.c.threshold, Float)
                / cast(ranked.c.threshold, Float)
            )
        ),
    )
    discount = settings.analytics_discount_rate
    yearly_margin = cast(ranked.c.monetary, Float) * (
        settings.analytics_margin * 12 / settings.analytics_window_months
    )
    clv = case(
        (
            ranked.c.monetary > 0,
            func.round(cast(yearly_margin * (1 + discount) / (discount + risk), Numeric), 2),
        ),
        else_=0,
    )
    return select(
        ranked.c.customer_id,
        literal(today, Date).label("computed_on"),
        ranked.c.since.label("recency_days"),
        ranked.c.frequency,
        ranked.c.monetary,
        ranked.c.r_score,
        ranked.c.f_score,
        ranked.c.m_score,
        type_coerce(tier, String).label("value_tier"),
        type_coerce(lifecycle, String).label("lifecycle"),
        clv.label("clv"),
        risk.label("churn_risk"),
    )


_SCORE_COLUMNS: Final = (
    "customer_id",
    "computed_on",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "value_tier",
    "lifecycle",
    "clv",
    "churn_risk",
)


def refresh_scores(
    session: Session,
    *,
    today: date,
    settings: AnalyticsSettings | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute every customer's row of `customer_scores` as of `today`; returns how many rows.

    The old rows are replaced in the caller's transaction, so readers see the previous snapshot until
    the caller commits. Set-based on PostgreSQL (one INSERT … SELECT), streamed on SQLite.

    Args:
        session: An open session; flushed, the caller commits.
        today: The reference day.
        settings: The analytics settings; read from the environment when None.
        progress: Called with the number of customers done so far (now and then, and at the end).
    """
    settings = settings or get_analytics_settings()
    population = population_median_gap(session, today=today)
    session.execute(delete(CustomerScore))
    if session.get_bind().dialect.name == "postgresql":
        statement = _scores_statement(today=today, settings=settings, population_gap=population)
        session.execute(insert(CustomerScore).from_select(list(_SCORE_COLUMNS), statement))
        written = int(session.scalar(select(func.count()).select_from(CustomerScore)) or 0)
    else:
        rows = score_customers(
            _streamed_facts(
                session, today=today, settings=settings, population_gap=population, progress=progress
            ),
            settings,
        )
        for first in range(0, len(rows), _INSERT_BATCH):
            session.execute(
                insert(CustomerScore),
                [
                    {
                        "customer_id": row.customer_id,
                        "computed_on": today,
                        "recency_days": row.recency_days,
                        "frequency": row.frequency,
                        "monetary": row.monetary,
                        "r_score": row.r_score,
                        "f_score": row.f_score,
                        "m_score": row.m_score,
                        "value_tier": row.value_tier,
                        "lifecycle": row.lifecycle,
                        "clv": row.clv,
                        "churn_risk": row.churn_risk,
                    }
                    for row in rows[first : first + _INSERT_BATCH]
                ],
            )
        written = len(rows)
    session.flush()
    if progress is not None:
        progress(written)
    logger.info("客户价值评分已重算：%d 位客户（%s）", written, today.isoformat())
    return written


# --------------------------------------------------------------------------------------------------
# One customer's tier.


def compute_value_tier(
    session: Session, *, customer_id: str, today: date, settings: AnalyticsSettings
) -> str:
    """The value tier of one customer by the same rule as `refresh_scores`, without ranking everyone."""
    counted = counted_order_condition(today) & (Order.order_date > window_start(today, settings))
    spends = (
        select(Order.customer_id.label("customer_id"), func.sum(Order.amount).label("spend"))
        .where(counted)
        .group_by(Order.customer_id)
        .subquery()
    )
    mine = session.scalar(select(spends.c.spend).where(spends.c.customer_id == customer_id))
    spend = Decimal(mine or 0).quantize(_CENT)
    if spend <= 0:
        return VALUE_TIER_SMALL
    total = Decimal(session.scalar(select(func.sum(Order.amount)).where(counted)) or 0).quantize(_CENT)
    above = session.scalar(select(func.sum(spends.c.spend)).where(spends.c.spend > mine))
    return tier_by_revenue_share(spend, Decimal(above or 0).quantize(_CENT), total, settings)


def unscored_customer(
    session: Session, *, customer_id: str, today: date, settings: AnalyticsSettings | None = None
) -> ScoreRow:
    """One customer's figures computed now, for a customer without a row yet (the 360 view).

    The same rules as `refresh_scores`, from this customer's orders and two sums over the window
    (the tier); the RFM scores rank every customer, so they stay None until the next refresh.
    """
    settings = settings or get_analytics_settings()
    orders = [
        (day, Decimal(amount))
        for day, amount in session.execute(
            select(Order.order_date, Order.amount).where(
                Order.customer_id == customer_id, counted_order_condition(today)
            )
        )
    ]
    # The population gap reads every order (cached for the day): only a single purchase day needs it.
    single_day = len({day for day, _ in orders}) == 1
    population = population_median_gap(session, today=today) if single_day else None
    facts = _facts(
        customer_id,
        orders,
        today=today,
        start=window_start(today, settings),
        population_gap=population,
        settings=settings,
    )
    return ScoreRow(
        customer_id=customer_id,
        recency_days=facts.recency_days,
        frequency=facts.frequency,
        monetary=facts.monetary,
        r_score=None,
        f_score=None,
        m_score=None,
        value_tier=compute_value_tier(session, customer_id=customer_id, today=today, settings=settings),
        lifecycle=facts.lifecycle,
        clv=lifetime_value(facts.monetary, facts.churn_risk, settings),
        churn_risk=facts.churn_risk,
    )


def customer_value_tier(
    session: Session, *, customer_id: str, today: date, settings: AnalyticsSettings | None = None
) -> str:
    """关键, 普通 or 小客户: the customer's scored tier, or the same rule computed now if not scored yet.

    The row of the last refresh is used when it was computed for `today` or before (the nightly job
    keeps it current); a customer without one (new since the last run, or a store never refreshed)
    is computed by the same rule over the window's orders.

    Raises:
        NotFound: No such customer ("customer_not_found").
    """
    found = session.execute(
        select(Customer.customer_id, CustomerScore.value_tier, CustomerScore.computed_on)
        .outerjoin(CustomerScore, CustomerScore.customer_id == Customer.customer_id)
        .where(Customer.customer_id == customer_id)
    ).first()
    if found is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    _, tier, computed_on = found
    if tier is not None and computed_on is not None and computed_on <= today:
        return str(tier)
    return compute_value_tier(
        session, customer_id=customer_id, today=today, settings=settings or get_analytics_settings()
    )


# --------------------------------------------------------------------------------------------------
# Figures over a scope.


def _sees_everyone(actor: Actor) -> bool:
    return actor.role == "admin" or (actor.role == "manager" and actor.region == ALL_REGIONS)


@dataclass(frozen=True)
class CsatAverage:
    """How many tickets were rated in a period and their mean rating (1–5); None without one."""

    rated: int
    average: float | None


def csat_average(session: Session, actor: Actor, *, start: date, end: date) -> CsatAverage:
    """The mean rating of the tickets rated `start`..`end` (Beijing days) in the actor's scope.

    Tickets of customers in scope; an actor who sees every customer (admin, 全国 manager) also counts
    the tickets filed by senders who were not verified (no customer).

    Raises:
        Forbidden: The actor is not staff ("staff_only").
    """
    require_staff(actor)
    since = datetime.combine(start, time(0), TZ)
    until = datetime.combine(end + timedelta(days=1), time(0), TZ)
    query = select(func.count(), func.avg(Ticket.rating)).where(
        Ticket.rating.is_not(None), Ticket.rated_at >= since, Ticket.rated_at < until
    )
    if not _sees_everyone(actor):
        query = query.where(Ticket.customer_id.in_(select(Customer.customer_id).where(customer_scope(actor))))
    rated, average = session.execute(query).one()
    return CsatAverage(rated=int(rated or 0), average=float(average) if average is not None else None)
