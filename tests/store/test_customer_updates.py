"""Updating a customer's record: each field's rule, all-or-nothing, scope, and the audit row."""

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, actor_for
from crm_store.customer_updates import AddPreference, check_update, update_customer
from crm_store.errors import Forbidden, Invalid, NotFound
from crm_store.models import AuditLog, Customer

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        ("phone", "+86 139-1234-5678", "13912345678"),
        ("phone", "１３９１２３４５６７８", "13912345678"),
        ("email", " wang@huafeng.cn ", "wang@huafeng.cn"),
        ("city", "杭州市", "杭州"),
        ("city", "上海", "上海"),
        ("birthday", "1988-02-29", date(1988, 2, 29)),
        ("birthday", "1990年3月5日", date(1990, 3, 5)),
        ("birthday", "1990/3/5", date(1990, 3, 5)),
        ("birthday", date(2000, 1, 1), date(2000, 1, 1)),
        ("notes", "  周三下午方便  ", "周三下午方便"),
        ("notes", "", None),
        ("preferences", "喜欢拿铁", AddPreference("喜欢拿铁")),
        ("preferences", ["靠窗", "周末送货", "靠窗"], ("靠窗", "周末送货")),
        ("preferences", [], ()),
    ],
)
def test_check_update_normalises(field: str, raw: object, value: object) -> None:
    assert check_update(field, raw, today=TODAY) == value


@pytest.mark.parametrize(
    ("field", "raw", "code"),
    [
        ("phone", "12345", "phone_invalid"),
        ("phone", "12912345678", "phone_invalid"),
        ("phone", 13912345678, "phone_invalid"),
        ("email", "not-an-email", "email_invalid"),
        ("email", "a@b", "email_invalid"),
        ("city", "", "city_invalid"),
        ("city", "101室", "city_invalid"),
        ("birthday", "1990-02-30", "birthday_invalid"),
        ("birthday", "1991-02-29", "birthday_invalid"),
        ("birthday", "明天", "birthday_invalid"),
        ("birthday", "2026-11-24", "birthday_in_future"),
        ("birthday", "1899-12-31", "birthday_invalid"),
        ("notes", "长" * 1001, "notes_too_long"),
        ("preferences", "  ", "preference_empty"),
        ("preferences", "好" * 101, "preference_too_long"),
        ("preferences", [f"偏好{n}" for n in range(21)], "preferences_too_many"),
        ("preferences", 42, "preferences_invalid"),
        ("name", "李四", "field_not_updatable"),
        ("owner_id", "E02", "field_not_updatable"),
    ],
)
def test_check_update_refuses_with_a_code_and_the_field(field: str, raw: object, code: str) -> None:
    with pytest.raises(Invalid) as refused:
        check_update(field, raw, today=TODAY)
    assert (refused.value.code, refused.value.field) == (code, field)


def test_update_applies_and_audits_without_copying_personal_values(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        changes = update_customer(
            session,
            actor_for(session, "E02"),
            "C0001",
            {"phone": "139 1234 5678", "city": "杭州市", "preferences": "喜欢拿铁", "notes": "周三下午方便"},
            today=TODAY,
        )
        session.commit()
        assert [c[0] for c in changes] == ["phone", "city", "notes", "preferences"]
        assert changes[0] == ("phone", "18201164104", "13912345678")
        assert changes[3] == ("preferences", (), ("喜欢拿铁",))
    with demo_store() as session:
        customer = session.get(Customer, "C0001")
        assert customer is not None
        assert (customer.phone, customer.city, customer.notes, customer.preferences) == (
            "13912345678",
            "杭州",
            "周三下午方便",
            "喜欢拿铁",
        )
        row = session.scalars(select(AuditLog).where(AuditLog.action == "update_customer")).one()
        assert (row.actor_id, row.entity_id) == ("E02", "C0001")
        assert row.detail["fields"] == ["phone", "city", "notes", "preferences"]
        assert row.detail["changes"]["city"] == {"old": "上海", "new": "杭州"}
        assert row.detail["changes"]["phone"] == {"changed": True}
        text = str(row.detail)
        for personal in ("13912345678", "18201164104", "拿铁", "周三下午"):
            assert personal not in text


def test_preferences_add_then_replace(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e02 = actor_for(session, "E02")
        update_customer(session, e02, "C0001", {"preferences": "靠窗的座位"}, today=TODAY)
        update_customer(session, e02, "C0001", {"preferences": "早餐要咖啡"}, today=TODAY)
        # Adding one that is there already changes nothing.
        assert update_customer(session, e02, "C0001", {"preferences": "靠窗的座位"}, today=TODAY) == []
        customer = session.get(Customer, "C0001")
        assert customer is not None and customer.preferences == "靠窗的座位\n早餐要咖啡"
        update_customer(session, e02, "C0001", {"preferences": ["只喝茶"]}, today=TODAY)
        assert customer.preferences == "只喝茶"
        update_customer(session, e02, "C0001", {"preferences": []}, today=TODAY)
        assert customer.preferences is None


def test_one_bad_value_changes_nothing(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        with pytest.raises(Invalid) as refused:
            update_customer(
                session,
                actor_for(session, "E02"),
                "C0001",
                {"city": "杭州", "birthday": "2030-01-01"},
                today=TODAY,
            )
        assert refused.value.field == "birthday"
        customer = session.get(Customer, "C0001")
        assert customer is not None and customer.city == "上海"
        assert session.scalars(select(AuditLog)).all() == []


def test_an_unchanged_value_is_no_change(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        assert (
            update_customer(session, actor_for(session, "E02"), "C0001", {"city": "上海"}, today=TODAY) == []
        )
        assert session.scalars(select(AuditLog)).all() == []
        with pytest.raises(Invalid) as empty:
            update_customer(session, actor_for(session, "E02"), "C0001", {}, today=TODAY)
        assert empty.value.code == "no_changes"


def test_updates_follow_the_scope(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        with pytest.raises(NotFound):
            update_customer(session, actor_for(session, "E02"), "C0003", {"city": "天津"}, today=TODAY)
        with pytest.raises(NotFound):
            update_customer(session, actor_for(session, "E01"), "C0003", {"city": "天津"}, today=TODAY)
        with pytest.raises(Forbidden):
            update_customer(session, CUSTOMER, "C0001", {"city": "天津"}, today=TODAY)
        # The service agent handling T09001 may correct 张伟's e-mail; the admin anyone's.
        assert update_customer(
            session, actor_for(session, "E06"), "C0001", {"email": "zw@example.com"}, today=TODAY
        )
        assert update_customer(session, actor_for(session, "E08"), "C0003", {"city": "天津"}, today=TODAY)
