"""Order status as the chat shows it: order-number parsing, lateness, safe view."""

from dataclasses import fields
from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from crm_store.orders import OrderStatusView, get_order_status, parse_order_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SO202611180001", "SO202611180001"),
        ("so202611180001", "SO202611180001"),
        ("  So202611180001\n", "SO202611180001"),
        ("ＳＯ２０２６１１１８０００１", "SO202611180001"),
        ("SO２０２６１１１８０００１", "SO202611180001"),
        ("SO 2026 1118 0001", "SO202611180001"),
        ("SO\u30002026\u300011180001", "SO202611180001"),
    ],
)
def test_parse_order_id_normalises_what_people_type(text: str, expected: str) -> None:
    assert parse_order_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SO000",
        "SO2026111800011",
        "SO20261118000",
        "202611180001",
        "SX202611180001",
        "SO202611180001😀",
        "😀",
        "SO" + "٢" * 12,  # Arabic-Indic digits are digits to \d but not order numbers
        "SO202611180001' OR '1'='1",
        "'; DROP TABLE orders; --",
        "订单SO202611180001",
        "S" * 10_000,
        "SO202611180001" + " " * 10_000,
        "1" * 10_000,
    ],
)
def test_parse_order_id_rejects_anything_else(text: str) -> None:
    assert parse_order_id(text) is None


def test_order_status_view_carries_no_personal_data() -> None:
    assert {f.name for f in fields(OrderStatusView)} == {
        "order_id",
        "status",
        "stage",
        "carrier",
        "tracking_no",
        "order_date",
        "promised_date",
        "is_late",
        "is_closed",
    }


def test_get_order_status_in_transit_on_time(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    with demo_store() as session:
        view = get_order_status(session, order_id="SO202611180001")
    assert view == OrderStatusView(
        order_id="SO202611180001",
        status="运输中",
        stage="包裹正在运输途中",
        carrier="顺丰速运",
        tracking_no="SF1234567890",
        order_date=date(2026, 11, 18),
        promised_date=date(2026, 11, 24),
        is_late=False,
        is_closed=False,
    )


def test_get_order_status_late_after_promised_date(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    with demo_store() as session:
        view = get_order_status(session, order_id="SO202611100004")
    assert view is not None
    assert (view.status, view.promised_date, view.is_late) == ("运输中", date(2026, 11, 15), True)


def test_get_order_status_explicit_today_overrides_the_clock(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    with demo_store() as session:
        view = get_order_status(session, order_id="SO202611180001", today=date(2026, 11, 25))
    assert view is not None and view.is_late


def test_get_order_status_accepts_typed_forms(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = get_order_status(session, order_id=" so 2026 1118 0001 ")
    assert view is not None and view.order_id == "SO202611180001"


@pytest.mark.parametrize(
    ("order_id", "status"),
    [("SO202610020002", "已签收"), ("SO202609080073", "退货中")],
)
def test_get_order_status_delivered_or_returning_is_never_late(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, order_id: str, status: str
) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    with demo_store() as session:
        view = get_order_status(session, order_id=order_id)
    assert view is not None
    assert view.status == status
    assert view.promised_date is not None and view.promised_date < date(2026, 11, 23)
    assert not view.is_late
    assert view.is_closed == (status == "已签收")


@pytest.mark.parametrize("order_id", ["SO209912310999", "SO000", "C0001", "SO202611180001' OR '1'='1"])
def test_get_order_status_unknown_or_malformed_is_none(
    demo_store: sessionmaker[Session], order_id: str
) -> None:
    with demo_store() as session:
        assert get_order_status(session, order_id=order_id) is None


def test_every_order_status_has_a_stage_in_words() -> None:
    from crm_store.orders import ORDER_STAGES
    from crm_store.vocab import ORDER_STATUSES

    assert set(ORDER_STAGES) == set(ORDER_STATUSES)
    assert all(len(stage) >= 4 for stage in ORDER_STAGES.values())
