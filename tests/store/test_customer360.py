"""Customer 360: finding a customer as staff name them, the view itself, its scope and its audit."""

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, Actor, actor_for
from crm_store.analytics.customer_value import (
    LIFECYCLE_AT_RISK,
    LIFECYCLE_LOST,
    LIFECYCLE_LOYAL,
    LIFECYCLE_NEW,
    LIFECYCLE_PROSPECT,
    LIFECYCLE_RETURNING,
    lifecycle_status,
)
from crm_store.customer360 import company_short_names, customer_view, find_customers, mask_email
from crm_store.errors import Forbidden, NotFound
from crm_store.models import AuditLog, Customer, Order

TODAY = date(2026, 11, 23)


def _actor(session: Session, employee_id: str) -> Actor:
    return actor_for(session, employee_id)


def _ids(session: Session, employee_id: str, query: str) -> list[str]:
    return [m.customer_id for m in find_customers(session, _actor(session, employee_id), query)]


# -- scope (issue 16: "How it will be checked") ------------------------------------------------------


def test_a_salesperson_gets_nothing_of_another_ones_customer(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e02 = _actor(session, "E02")
        with pytest.raises(NotFound) as missing:
            customer_view(session, e02, "C0003", today=TODAY)
        assert missing.value.code == "customer_not_found"
        # Out of scope reads exactly like a customer that does not exist.
        with pytest.raises(NotFound) as unknown:
            customer_view(session, e02, "C9999", today=TODAY)
        assert str(unknown.value).replace("C9999", "C0003") == str(missing.value)
        assert _ids(session, "E02", "王芳") == []
        assert _ids(session, "E02", "华峰科技的王芳") == []
        assert _ids(session, "E02", "17205673406") == []
        # No audit row for a view that showed nothing.
        assert session.scalars(select(AuditLog).where(AuditLog.action == "view_customer")).all() == []


def test_a_manager_sees_their_region_only(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e01 = _actor(session, "E01")
        assert customer_view(session, e01, "C0001", today=TODAY).name == "张伟"
        with pytest.raises(NotFound):
            customer_view(session, e01, "C0003", today=TODAY)
        assert _ids(session, "E01", "张伟") == ["C0001"]
        assert _ids(session, "E01", "王芳") == []


def test_an_admin_sees_both(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e08 = _actor(session, "E08")
        assert customer_view(session, e08, "C0001", today=TODAY).name == "张伟"
        assert customer_view(session, e08, "C0003", today=TODAY).name == "王芳"


def test_a_service_agent_sees_only_customers_of_their_tickets(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e06 = _actor(session, "E06")
        # T09001 (C0001) and T00002 (C0006) are assigned to E06; C0003 has no ticket of theirs.
        assert customer_view(session, e06, "C0001", today=TODAY).customer_id == "C0001"
        assert customer_view(session, e06, "C0006", today=TODAY).customer_id == "C0006"
        with pytest.raises(NotFound):
            customer_view(session, e06, "C0003", today=TODAY)
        # C0004's ticket T00001 belongs to E07.
        with pytest.raises(NotFound):
            customer_view(session, e06, "C0004", today=TODAY)


def test_a_customer_side_actor_is_refused(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        with pytest.raises(Forbidden) as refused:
            customer_view(session, CUSTOMER, "C0001", today=TODAY)
        assert refused.value.code == "staff_only"
        with pytest.raises(Forbidden):
            find_customers(session, CUSTOMER, "张伟")
        # An employee id claimed with the customer role is still no employee.
        with pytest.raises(Forbidden):
            customer_view(session, Actor(role="customer", employee_id="E08"), "C0001", today=TODAY)


def test_every_view_is_audited_naming_the_employee_and_the_sections(
    demo_store: sessionmaker[Session],
) -> None:
    with demo_store() as session:
        customer_view(session, _actor(session, "E01"), "C0001", today=TODAY)
        session.commit()
    with demo_store() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.action == "view_customer")).one()
        assert (row.actor_id, row.actor_role, row.entity, row.entity_id) == (
            "E01",
            "manager",
            "customer",
            "C0001",
        )
        assert {"phone", "orders", "notes", "opportunities", "birthday"} <= set(row.detail["fields"])
        assert row.detail["contact_unmasked"] is False
        text = str(row.detail)
        # Nothing personal is copied into the log.
        for personal in ("18201164104", "c0001@example.com", "张伟", "靠窗"):
            assert personal not in text


# -- the view ---------------------------------------------------------------------------------------


def test_the_owner_sees_phone_and_email_others_see_them_masked(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        own = customer_view(session, _actor(session, "E02"), "C0001", today=TODAY)
        assert (own.phone, own.email, own.contact_unmasked) == ("18201164104", "c0001@example.com", True)
        for other in ("E01", "E06", "E08"):
            view = customer_view(session, _actor(session, other), "C0001", today=TODAY)
            assert view.phone == "182****4104"
            assert view.email == "c0***@example.com"
            assert view.to_json()["profile"]["contact_masked"] is True
            assert "18201164104" not in str(view.to_json())


def test_the_view_of_zhang_wei_has_the_whole_picture(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = customer_view(session, _actor(session, "E02"), "C0001", today=TODAY)
    data = view.to_json()
    assert data["url"] == "/customers/C0001"
    assert data["profile"]["owner_name"] == "王丽"
    assert data["profile"]["city"] == "上海"
    # Four counted orders (运输中 counts; nothing cancelled): 399 + 1899 + 2598 + 816.
    assert data["order_count"] == 4
    assert data["total_spend"] == 5712.0
    assert [o["order_id"] for o in data["recent_orders"]] == [
        "SO202611180001",
        "SO202610020002",
        "SO202604040001",
    ]
    assert data["recent_orders"][0]["status"] == "运输中"
    assert data["recent_orders"][0]["items"]
    assert [t["ticket_id"] for t in data["open_tickets"]] == ["T09001"]
    assert data["last_contact"]["occurred_at"] == "2026-08-15"
    assert data["last_contact"]["employee_name"] == "王丽"
    assert data["next_step"] == "发送报价单"
    assert "靠窗" in data["notes"]
    assert data["next_birthday"] == "2026-11-25"
    assert data["days_to_birthday"] == 2
    assert data["lifecycle"] == LIFECYCLE_RETURNING
    assert data["value_tier"] in {"关键", "普通", "小客户"}


def test_the_view_shows_open_opportunities_weighted_by_stage(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = customer_view(session, _actor(session, "E03"), "C0003", today=TODAY)
    (opportunity,) = view.open_opportunities
    assert (opportunity.opportunity_id, opportunity.stage, opportunity.probability) == ("OP001", "报价", 50)
    assert opportunity.weighted_amount == Decimal("49000.00")
    assert view.to_json()["weighted_pipeline"] == 49000.0
    assert view.last_contact is not None and view.last_contact.next_date == date(2026, 11, 26)
    assert view.company == "华峰科技有限公司"


def test_the_value_tier_is_the_revenue_share_rule_for_every_customer(
    demo_store: sessionmaker[Session],
) -> None:
    with demo_store() as session:
        admin = _actor(session, "E08")
        ids = list(session.scalars(select(Customer.customer_id).order_by(Customer.customer_id)))
        tiers = {cid: customer_view(session, admin, cid, today=TODAY).value_tier for cid in ids}
        spends: dict[str, Decimal] = {}
        for cid, amount in session.execute(
            select(Order.customer_id, Order.amount).where(
                Order.order_date > date(2025, 11, 23),
                Order.order_date <= TODAY,
                Order.status.not_in(["待付款", "已取消", "已退款"]),
            )
        ):
            spends[cid] = spends.get(cid, Decimal(0)) + amount
    total = sum(spends.values(), Decimal(0))
    expected = {}
    for cid in ids:
        mine = spends.get(cid, Decimal(0))
        above = sum((s for s in spends.values() if s > mine), Decimal(0))
        if mine > 0 and above < Decimal("0.80") * total:
            expected[cid] = "关键"
        elif mine > 0 and above < Decimal("0.95") * total:
            expected[cid] = "普通"
        else:
            expected[cid] = "小客户"
    assert tiers == expected
    assert set(tiers.values()) == {"关键", "普通", "小客户"}


def test_cancelled_and_refunded_orders_are_not_spend(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        before = customer_view(session, _actor(session, "E02"), "C0001", today=TODAY)
        for n, status in enumerate(("已取消", "已退款", "待付款"), start=1):
            session.add(
                Order(
                    order_id=f"SO20261120999{n}",
                    customer_id="C0001",
                    order_date=date(2026, 11, 20),
                    status=status,
                    amount=Decimal(10000),
                )
            )
        session.flush()
        after = customer_view(session, _actor(session, "E02"), "C0001", today=TODAY)
    assert (after.order_count, after.total_spend) == (before.order_count, before.total_spend)
    # They are still orders: the last three show them.
    assert len({o.order_id for o in after.recent_orders} - {o.order_id for o in before.recent_orders}) == 3


def test_a_prospect_without_orders(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        session.add(Customer(customer_id="C0999", name="新客户", type="个人", owner_id="E02", region="华东"))
        session.flush()
        view = customer_view(session, _actor(session, "E02"), "C0999", today=TODAY)
    assert (view.lifecycle, view.order_count, view.total_spend) == (LIFECYCLE_PROSPECT, 0, Decimal("0.00"))
    assert view.value_tier == "小客户"
    assert view.recent_orders == () and view.last_contact is None and view.next_birthday is None
    assert view.to_json()["profile"]["phone"] is None


@pytest.mark.parametrize(
    ("counted", "last_year", "days_ago", "lapsed", "status"),
    [
        (0, 0, None, False, LIFECYCLE_PROSPECT),
        (1, 1, 10, False, LIFECYCLE_NEW),
        (3, 3, 10, False, LIFECYCLE_RETURNING),
        (4, 1, 10, False, LIFECYCLE_RETURNING),
        (5, 5, 10, False, LIFECYCLE_LOYAL),
        (9, 5, 100, True, LIFECYCLE_AT_RISK),
        (9, 0, 366, True, LIFECYCLE_LOST),
        (1, 0, 400, True, LIFECYCLE_LOST),
    ],
)
def test_lifecycle_rules(
    counted: int, last_year: int, days_ago: int | None, lapsed: bool, status: str
) -> None:
    last = date.fromordinal(TODAY.toordinal() - days_ago) if days_ago is not None else None
    assert (
        lifecycle_status(
            counted_orders=counted, orders_last_year=last_year, last_order=last, lapsed=lapsed, today=TODAY
        )
        == status
    )


def test_lifecycle_of_demo_customers(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        admin = _actor(session, "E08")
        # C0003 last bought on 2026-05-08, far past her rhythm;
        # C0006 bought monthly for a year, nothing since 2025-12-29.
        assert customer_view(session, admin, "C0003", today=TODAY).lifecycle == LIFECYCLE_AT_RISK
        assert customer_view(session, admin, "C0006", today=TODAY).lifecycle == LIFECYCLE_AT_RISK


def test_mask_email() -> None:
    assert mask_email("c0001@example.com") == "c0***@example.com"
    assert mask_email(None) is None
    assert mask_email("broken") == "***"


# -- finding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("employee", "query", "first"),
    [
        ("E03", "C0003", "C0003"),
        ("E03", "c0003", "C0003"),
        ("E03", "17205673406", "C0003"),
        ("E03", "172-0567-3406", "C0003"),
        ("E03", "+86 172 0567 3406", "C0003"),
        ("E03", "尾号3406", "C0003"),
        ("E03", "王芳", "C0003"),
        ("E03", "王总", "C0003"),
        ("E03", "华峰科技", "C0003"),
        ("E03", "华峰科技有限公司", "C0003"),
        ("E03", "华峰", "C0003"),
        ("E03", "华峰科技的王芳", "C0003"),
        ("E03", "华峰王总", "C0003"),
        ("E03", "查一下王芳的档案", "C0003"),
        ("E02", "孔总监", "C0004"),
        ("E02", "孔总", "C0004"),
        ("E02", "远航物流", "C0004"),
        ("E02", "远航物流公司", "C0004"),
        ("E02", "张伟", "C0001"),
        ("E02", "张姐", "C0001"),
        ("E08", "王芳", "C0003"),
    ],
)
def test_find_customers_understands_how_staff_name_them(
    demo_store: sessionmaker[Session], employee: str, query: str, first: str
) -> None:
    with demo_store() as session:
        found = _ids(session, employee, query)
    assert found and found[0] == first, found


def test_a_company_name_finds_every_contact_in_scope(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        # C0003 王芳 and C0028 汤洋 both work at 华峰科技有限公司, both owned by E03.
        assert sorted(_ids(session, "E03", "华峰科技")) == ["C0003", "C0028"]
        assert _ids(session, "E03", "华峰科技的汤洋") == ["C0028"]


def test_a_business_title_puts_company_contacts_first(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        found = find_customers(session, _actor(session, "E03"), "王总")
    # 王芳 (企业, C0003) before 王军 (个人, C0043).
    assert [m.customer_id for m in found] == ["C0003", "C0043"]
    assert found[0].matched_by == "title"
    assert found[0].masked_phone == "172****3406"


def test_find_returns_at_most_five_ranked(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        found = find_customers(session, _actor(session, "E08"), "王")
        assert len(found) <= 5
        assert all(m.name.startswith("王") for m in found)
        assert find_customers(session, _actor(session, "E08"), "   ") == []
        assert find_customers(session, _actor(session, "E08"), "没有这个人的名字啊") == []


def test_company_short_names() -> None:
    assert company_short_names("华峰科技有限公司") == ["华峰科技", "华峰"]
    assert company_short_names("远航物流股份有限公司") == ["远航物流", "远航"]
    assert company_short_names("启明教育集团") == ["启明教育", "启明"]
    assert company_short_names("小米") == []
