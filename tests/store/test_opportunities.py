"""Opportunities: the pipeline and its probabilities, moves and their history, who may change what."""

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, actor_for
from crm_store.errors import Conflict, Forbidden, Invalid, NotFound
from crm_store.models import AuditLog, Employee, Opportunity, OpportunityStageChange
from crm_store.opportunities import (
    PIPELINE,
    STAGE_PROBABILITY,
    close_lost,
    create_opportunity,
    find_opportunities,
    move_stage,
    open_pipeline,
    opportunity_view,
    set_amount,
    weighted_amount,
)


def test_the_pipeline_and_its_probabilities() -> None:
    assert PIPELINE == ("线索", "需求确认", "报价", "谈判", "赢单", "输单")
    # The fixture's stages keep their probabilities.
    assert (STAGE_PROBABILITY["需求确认"], STAGE_PROBABILITY["报价"], STAGE_PROBABILITY["谈判"]) == (
        30,
        50,
        70,
    )
    assert (STAGE_PROBABILITY["线索"], STAGE_PROBABILITY["赢单"], STAGE_PROBABILITY["输单"]) == (10, 100, 0)
    assert weighted_amount(Decimal("98000"), "报价") == Decimal("49000.00")


def test_the_fixture_probabilities_agree_with_the_table(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        for opportunity in session.scalars(select(Opportunity)):
            assert opportunity.probability == STAGE_PROBABILITY[opportunity.stage]


def test_create_move_and_history(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e03 = actor_for(session, "E03")
        created = create_opportunity(
            session, e03, customer_id="C0003", name="  三期 运维服务 ", amount="120000"
        )
        assert (created.stage, created.owner_id, created.amount) == ("线索", "E03", Decimal("120000.00"))
        assert created.name == "三期 运维服务"
        assert created.opportunity_id == "OP004"
        moved = move_stage(session, e03, created.opportunity_id, "报价")
        back = move_stage(session, e03, created.opportunity_id, "需求确认")
        assert (moved.stage, back.stage, back.probability) == ("报价", "需求确认", 30)
        session.commit()
    with demo_store() as session:
        history = session.scalars(
            select(OpportunityStageChange)
            .where(OpportunityStageChange.opportunity_id == "OP004")
            .order_by(OpportunityStageChange.id)
        ).all()
        assert [(h.from_stage, h.to_stage) for h in history] == [
            (None, "线索"),
            ("线索", "报价"),
            ("报价", "需求确认"),
        ]
        assert all(h.actor_id == "E03" and h.changed_at.tzinfo is not None for h in history)
        stored = session.get(Opportunity, "OP004")
        assert stored is not None and stored.probability == 30
        actions = [a.action for a in session.scalars(select(AuditLog).where(AuditLog.entity_id == "OP004"))]
        assert actions == ["create_opportunity", "move_opportunity", "move_opportunity"]
        assert (
            opportunity_view(session, actor_for(session, "E03"), "OP004").history[-1].to_stage == "需求确认"
        )


def test_moving_to_the_same_stage_writes_nothing(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = move_stage(session, actor_for(session, "E03"), "OP001", "报价")
        assert view.stage == "报价"
        assert session.scalars(select(AuditLog)).all() == []


def test_won_and_lost_close_it_for_good(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e03 = actor_for(session, "E03")
        won = move_stage(session, e03, "OP001", "赢单")
        assert (won.is_open, won.probability, won.weighted_amount) == (False, 100, Decimal("98000.00"))
        with pytest.raises(Conflict) as closed:
            move_stage(session, e03, "OP001", "谈判")
        assert closed.value.code == "opportunity_closed"
        with pytest.raises(Conflict):
            set_amount(session, e03, "OP001", 1)
        with pytest.raises(Conflict):
            close_lost(session, e03, "OP001", "客户预算取消")


def test_close_lost_needs_a_reason(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e02 = actor_for(session, "E02")
        for reason in ("", "   "):
            with pytest.raises(Invalid) as missing:
                close_lost(session, e02, "OP002", reason)
            assert (missing.value.code, missing.value.field) == ("lost_reason_required", "lost_reason")
        with pytest.raises(Invalid) as via_move:
            move_stage(session, e02, "OP002", "输单")
        assert via_move.value.code == "lost_reason_required"
        lost = close_lost(session, e02, "OP002", "客户选了竞争对手的方案")
        assert (lost.stage, lost.lost_reason, lost.is_open) == ("输单", "客户选了竞争对手的方案", False)
        row = session.scalars(select(AuditLog).where(AuditLog.action == "close_opportunity_lost")).one()
        assert "竞争对手" not in str(row.detail) and row.detail["fields"] == ["lost_reason"]


@pytest.mark.parametrize("amount", [0, -5, "abc", None, "1e20", "NaN"])
def test_amount_must_be_positive(demo_store: sessionmaker[Session], amount: object) -> None:
    with demo_store() as session:
        e03 = actor_for(session, "E03")
        with pytest.raises(Invalid) as bad:
            set_amount(session, e03, "OP001", amount)
        assert (bad.value.code, bad.value.field) == ("opportunity_amount_invalid", "amount")
        with pytest.raises(Invalid):
            create_opportunity(session, e03, customer_id="C0003", name="x", amount=amount)


def test_set_amount_is_audited_with_old_and_new(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = set_amount(session, actor_for(session, "E03"), "OP001", "105,000")
        assert (view.amount, view.weighted_amount) == (Decimal("105000.00"), Decimal("52500.00"))
        row = session.scalars(select(AuditLog).where(AuditLog.action == "update_opportunity")).one()
        assert row.detail["changes"]["amount"] == {"old": "98000.00", "new": "105000.00"}
        assert row.actor_id == "E03"


def test_create_checks_scope_stage_and_name(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e02 = actor_for(session, "E02")
        with pytest.raises(NotFound):
            create_opportunity(session, e02, customer_id="C0003", name="越权", amount=1000)
        with pytest.raises(Invalid) as stage:
            create_opportunity(session, e02, customer_id="C0001", name="已赢", amount=1000, stage="赢单")
        assert stage.value.field == "stage"
        with pytest.raises(Invalid) as name:
            create_opportunity(session, e02, customer_id="C0001", name=" ", amount=1000)
        assert name.value.field == "name"
        # A salesperson cannot give their opportunity to someone else.
        view = create_opportunity(
            session, e02, customer_id="C0001", name="会员升级", amount=800, owner_id="E03"
        )
        assert view.owner_id == "E02"


def test_a_manager_creates_for_the_customers_owner(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = create_opportunity(
            session, actor_for(session, "E01"), customer_id="C0001", name="团购", amount=5000
        )
        assert view.owner_id == "E02"


def test_who_may_change_an_opportunity(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        # OP001 belongs to E03 (华北). Another salesperson and another region's manager do not see it.
        for other in ("E02", "E04", "E01"):
            with pytest.raises(NotFound) as hidden:
                move_stage(session, actor_for(session, other), "OP001", "谈判")
            assert hidden.value.code == "opportunity_not_found"
        with pytest.raises(Forbidden) as service:
            move_stage(session, actor_for(session, "E06"), "OP001", "谈判")
        assert service.value.code == "role_not_allowed"
        with pytest.raises(Forbidden):
            move_stage(session, CUSTOMER, "OP001", "谈判")
        # E02's OP002: their manager E01 (华东) may move it, and so may the admin.
        assert move_stage(session, actor_for(session, "E01"), "OP002", "报价").stage == "报价"
        assert move_stage(session, actor_for(session, "E08"), "OP002", "谈判").stage == "谈判"
        assert move_stage(session, actor_for(session, "E03"), "OP001", "谈判").stage == "谈判"


def test_a_manager_of_all_regions_sees_every_opportunity(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        session.add(Employee(employee_id="E99", name="总经理", role="manager", region="全国"))
        session.flush()
        assert {v.opportunity_id for v in open_pipeline(session, actor_for(session, "E99")).items} == {
            "OP001",
            "OP002",
            "OP003",
        }


def test_my_pipeline_lists_open_ones_with_weighted_totals(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        e02 = actor_for(session, "E02")
        create_opportunity(session, e02, customer_id="C0001", name="会员升级", amount=2000, stage="谈判")
        won = create_opportunity(session, e02, customer_id="C0002", name="已成交", amount=9000)
        move_stage(session, e02, won.opportunity_id, "赢单")
        pipeline = open_pipeline(session, e02)
        # OP002 (45000 × 30%) and the new one (2000 × 70%); the won one is not open.
        assert [v.name for v in pipeline.items] == ["办公家具批量采购", "会员升级"]
        assert pipeline.total_amount == Decimal("47000.00")
        assert pipeline.weighted_total == Decimal("13500.00") + Decimal("1400.00")
        assert pipeline.to_json()["weighted_total"] == 14900.0
        admin = open_pipeline(session, actor_for(session, "E08"))
        assert {v.opportunity_id for v in admin.items} >= {"OP001", "OP002", "OP003"}
        with pytest.raises(Forbidden):
            open_pipeline(session, actor_for(session, "E06"))


@pytest.mark.parametrize(
    ("employee", "text", "expected"),
    [
        ("E03", "OP001", ["OP001"]),
        ("E03", "op001", ["OP001"]),
        ("E03", "二期", ["OP001"]),
        ("E03", "企业版软件二期那个商机", ["OP001"]),
        ("E03", "华峰科技", ["OP001"]),
        ("E03", "王芳", ["OP001"]),
        ("E02", "远航物流", ["OP002"]),
        ("E02", "OP001", []),
        ("E02", "二期", []),
    ],
)
def test_find_opportunities(
    demo_store: sessionmaker[Session], employee: str, text: str, expected: list[str]
) -> None:
    with demo_store() as session:
        found = find_opportunities(session, actor_for(session, employee), text)
        assert [v.opportunity_id for v in found] == expected


def test_legacy_stages_still_import_and_move_into_the_pipeline(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        session.add(
            Opportunity(
                opportunity_id="OP900",
                customer_id="C0001",
                owner_id="E02",
                name="老数据",
                stage="方案演示",
                amount=Decimal(1000),
                expected_close=date(2027, 1, 1),
            )
        )
        session.flush()
        e02 = actor_for(session, "E02")
        assert "OP900" in {v.opportunity_id for v in open_pipeline(session, e02).items}
        assert move_stage(session, e02, "OP900", "报价").stage == "报价"
