"""A verified customer's orders and references to them, lookup by phone, opt-out and value tier."""

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from crm_store.customers import (
    OptOut,
    OrderSummary,
    customer_value_tier,
    find_customer_by_phone,
    opt_out_from_chat,
    recent_orders,
    registered_phone,
    resolve_order_reference,
    set_opt_out,
)
from crm_store.errors import NotFound
from crm_store.models import AuditLog, Customer, Order

TODAY = date(2026, 11, 23)


@pytest.fixture
def c0001_orders(demo_store: sessionmaker[Session]) -> list[OrderSummary]:
    with demo_store() as session:
        return recent_orders(session, customer_id="C0001")


def test_recent_orders_newest_first_with_readable_labels(c0001_orders: list[OrderSummary]) -> None:
    assert [(o.order_id, o.label) for o in c0001_orders] == [
        ("SO202611180001", "11月18日 无线蓝牙耳机 Air3（运输中）"),
        ("SO202610020002", "10月2日 家用空气净化器 X1（已签收）"),
        ("SO202604040001", "4月4日 降噪头戴耳机 Pro（已签收）"),
        ("SO202602250002", "2月25日 智能手环 Band5 等2件商品（已签收）"),
    ]
    first = c0001_orders[0]
    assert (first.status, first.amount, first.order_date, first.promised_date) == (
        "运输中",
        Decimal("399.00"),
        date(2026, 11, 18),
        date(2026, 11, 24),
    )
    # The larger line first: 2 × 249 before 2 × 159.
    assert c0001_orders[3].product_names == ("智能手环 Band5", "电热水壶 K2")


def test_recent_orders_respects_the_limit(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        assert [o.order_id for o in recent_orders(session, customer_id="C0001", limit=2)] == [
            "SO202611180001",
            "SO202610020002",
        ]
        assert recent_orders(session, customer_id="C0999") == []


def test_recent_orders_lists_only_that_customers_orders(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        orders = recent_orders(session, customer_id="C0005", limit=50)
        owners = set(
            session.scalars(select(Order.customer_id).where(Order.order_id.in_([o.order_id for o in orders])))
        )
    assert owners == {"C0005"}
    assert orders[0].label == "11月10日 扫地机器人 S7（运输中）"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("第二个", "SO202610020002"),
        ("第2个", "SO202610020002"),
        ("第二单", "SO202610020002"),
        ("就第二笔吧", "SO202610020002"),
        ("2", "SO202610020002"),
        ("二", "SO202610020002"),
        ("第一个", "SO202611180001"),
        ("最后一个", "SO202602250002"),
        ("最后那单", "SO202602250002"),
        ("倒数第二个", "SO202604040001"),
        ("最近那单", "SO202611180001"),
        ("最新的", "SO202611180001"),
        ("SO202604040001", "SO202604040001"),
        ("是 so2026 0404 0001 这个", "SO202604040001"),
        ("净化器那单", "SO202610020002"),
        ("空气净化器", "SO202610020002"),
        ("手环那个", "SO202602250002"),
        ("电热水壶那单", "SO202602250002"),
        ("蓝牙耳机那单", "SO202611180001"),
        ("Air3", "SO202611180001"),
        ("降噪耳机", "SO202604040001"),
        ("最近买的耳机", "SO202611180001"),
        ("最早那副耳机", "SO202604040001"),
    ],
)
def test_resolve_order_reference(c0001_orders: list[OrderSummary], text: str, expected: str) -> None:
    resolved = resolve_order_reference(c0001_orders, text)
    assert resolved is not None and resolved.order_id == expected


@pytest.mark.parametrize(
    "text",
    [
        "耳机那单",  # two orders have earphones: ask, do not guess
        "扫地机器人那个",  # not bought by this customer
        "SO202611100004",  # another customer's order
        "SO2026041800011",  # a typo: not the order inside it
        "第五个",  # only four listed
        "第零个",
        "5",
        "机",
        "随便",
        "",
        "第" * 500,
    ],
)
def test_unclear_references_resolve_to_nothing(c0001_orders: list[OrderSummary], text: str) -> None:
    assert resolve_order_reference(c0001_orders, text) is None


def test_product_reference_for_another_customer(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        orders = recent_orders(session, customer_id="C0005")
    resolved = resolve_order_reference(orders, "扫地机器人那个")
    assert resolved is not None and resolved.order_id == "SO202611100004"
    assert resolve_order_reference([], "第一个") is None


@pytest.mark.parametrize("typed", ["18201164104", "182 0116 4104", "+86-182-0116-4104"])
def test_find_customer_by_phone(demo_store: sessionmaker[Session], typed: str) -> None:
    with demo_store() as session:
        customer = find_customer_by_phone(session, typed)
        assert customer is not None and customer.customer_id == "C0001"


def test_find_customer_by_phone_unknown_invalid_or_shared(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        assert find_customer_by_phone(session, "13800138000") is None
        assert find_customer_by_phone(session, "不告诉你") is None
        session.add(Customer(customer_id="C9001", name="张伟", type="个人", phone="18201164104"))
    with demo_store() as session:
        # Two customers share the number: picking one would be a guess.
        assert find_customer_by_phone(session, "18201164104") is None


def test_set_opt_out_changes_the_flag_once_and_audits_it(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        assert set_opt_out(session, customer_id="C0001", actor_role="customer", actor_id="C0001") is True
    with demo_store.begin() as session:
        assert set_opt_out(session, customer_id="C0001", actor_role="customer", actor_id="C0001") is False
    with demo_store() as session:
        assert session.get_one(Customer, "C0001").opt_out is True
        rows = session.scalars(select(AuditLog)).all()
    assert [(r.action, r.entity, r.entity_id, r.actor_role, r.actor_id) for r in rows] == [
        ("opt_out", "customer", "C0001", "customer", "C0001")
    ]
    assert rows[0].detail == {"field": "opt_out", "value": True}


def test_set_opt_out_of_an_opted_out_customer_changes_nothing(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        assert set_opt_out(session, customer_id="C0002", actor_role="customer", actor_id=None) is False
        assert session.scalars(select(AuditLog)).all() == []


def test_opt_in_again(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        assert set_opt_out(session, customer_id="C0002", actor_role="sales", actor_id="E02", opt_out=False)
    with demo_store() as session:
        assert session.get_one(Customer, "C0002").opt_out is False


def test_set_opt_out_of_an_unknown_customer(demo_store: sessionmaker[Session]) -> None:
    with pytest.raises(NotFound) as refused, demo_store.begin() as session:
        set_opt_out(session, customer_id="C0999", actor_role="customer", actor_id=None)
    assert (refused.value.code, refused.value.data) == ("customer_not_found", {"customer_id": "C0999"})


def test_opt_out_from_chat_by_phone_or_as_the_verified_customer(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        by_phone = opt_out_from_chat(session, customer_id=None, phone="172 0567 3406", actor_id="k1")
        again = opt_out_from_chat(session, customer_id="C0003", phone=None, actor_id="k1")
    assert by_phone == OptOut(customer_id="C0003", masked_phone="172****3406", changed=True)
    assert again == OptOut(customer_id="C0003", masked_phone="172****3406", changed=False)
    with demo_store() as session:
        assert session.get_one(Customer, "C0003").opt_out is True


def test_opt_out_from_chat_of_a_phone_nobody_has(demo_store: sessionmaker[Session]) -> None:
    with pytest.raises(NotFound) as refused, demo_store.begin() as session:
        opt_out_from_chat(session, customer_id=None, phone="13800138000", actor_id="k1")
    assert refused.value.code == "customer_not_found"
    assert "13800138000" not in str(refused.value)


def test_value_tiers_of_the_demo_follow_the_revenue_share_rule(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        ids = session.scalars(select(Customer.customer_id)).all()
        tiers = {cid: customer_value_tier(session, customer_id=cid, today=TODAY) for cid in ids}
        spends = {
            cid: Decimal(spend)
            for cid, spend in session.execute(
                text(
                    "SELECT customer_id, SUM(amount) FROM orders "
                    "WHERE status NOT IN ('待付款', '已取消', '已退款') "
                    "AND order_date > '2025-11-23' AND order_date <= '2026-11-23' GROUP BY customer_id"
                )
            )
        }
    total = sum(spends.values())
    # C0003 is among the biggest spenders; C0012 and C0001 further down the revenue.
    for cid in ("C0003", "C0012", "C0001"):
        above = sum(s for s in spends.values() if s > spends[cid])
        expected = (
            "关键"
            if above < Decimal("0.8") * total
            else "普通"
            if above < Decimal("0.95") * total
            else "小客户"
        )
        assert tiers[cid] == expected, cid
    counts = {tier: list(tiers.values()).count(tier) for tier in ("关键", "普通", "小客户")}
    assert counts == {"关键": 24, "普通": 13, "小客户": 23}


def _ranked_store(session: Session, spends: list[int]) -> None:
    for n, spend in enumerate(spends, start=1):
        cid = f"C{n:04d}"
        session.add(Customer(customer_id=cid, name=f"客户{n}", type="个人"))
        if spend:
            session.add(
                Order(
                    order_id=f"SO2026110{n:07d}",
                    customer_id=cid,
                    order_date=date(2026, 11, 1),
                    status="已签收",
                    amount=Decimal(spend),
                )
            )


def test_value_tier_first_80_percent_of_revenue_key_next_15_normal(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _ranked_store(session, [1000, 900, 800, 700, 600, 500, 400, 300, 200, 100])
    with session_factory() as session:
        tiers = [customer_value_tier(session, customer_id=f"C{n:04d}", today=TODAY) for n in range(1, 11)]
    # Revenue 5,500: 80 % is 4,400, 95 % is 5,225. The 500 spender follows 4,000 (关键: it crosses
    # the line); the 400 one follows 4,500 (普通), the 200 one 5,200 (普通), the 100 one 5,400.
    assert tiers == ["关键"] * 6 + ["普通"] * 3 + ["小客户"]


def test_value_tier_ties_share_a_tier_and_zero_is_small(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _ranked_store(session, [500, 500, 500, 100, 100, 0, 0, 0, 0, 0])
    with session_factory() as session:
        tiers = [customer_value_tier(session, customer_id=f"C{n:04d}", today=TODAY) for n in range(1, 11)]
    # Revenue 1,700: nobody spent more than the three 500s (关键); 1,500 is above 80 % (1,360) and
    # below 95 % (1,615) for both 100s (普通); nothing spent is 小客户.
    assert tiers == ["关键"] * 3 + ["普通"] * 2 + ["小客户"] * 5


def test_value_tier_counts_only_paid_orders_of_the_last_12_months(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _ranked_store(session, [0, 20, 30, 40, 50])
        # C0001 would top the list, but only with orders that do not count.
        for n, (day, status) in enumerate(
            [(date(2025, 11, 23), "已签收"), (date(2026, 11, 24), "已签收"), (date(2026, 6, 1), "已取消"),
             (date(2026, 6, 1), "已退款"), (date(2026, 6, 1), "待付款")],
            start=1,
        ):  # fmt: skip
            session.add(
                Order(
                    order_id=f"SO20260600{n:04d}",
                    customer_id="C0001",
                    order_date=day,
                    status=status,
                    amount=Decimal(10_000),
                )
            )
    with session_factory() as session:
        assert customer_value_tier(session, customer_id="C0001", today=TODAY) == "小客户"
        assert customer_value_tier(session, customer_id="C0005", today=TODAY) == "关键"
        # A year later nothing counts any more.
        assert customer_value_tier(session, customer_id="C0005", today=date(2027, 11, 1)) == "小客户"


def test_value_tier_of_an_unknown_customer(demo_store: sessionmaker[Session]) -> None:
    with pytest.raises(NotFound), demo_store() as session:
        customer_value_tier(session, customer_id="C0999", today=TODAY)


def test_registered_phone(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        assert registered_phone(session, customer_id="C0001") == "18201164104"
        assert registered_phone(session, customer_id="C0999") is None
