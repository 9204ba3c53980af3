"""Complaints: category, priority, SLA, assignment, filing a ticket, status and rating."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.complaints import (
    NO_ORDER,
    REGISTERED_PHONE,
    SLA_HOURS,
    ComplaintReceipt,
    complaint_priority,
    create_complaint,
    file_chat_complaint,
    infer_category,
    open_tickets,
    parse_ticket_id,
    pick_assignee,
    rate_ticket,
    severity_words,
    sla_deadline,
    ticket_status,
)
from crm_store.errors import CrmError, Invalid, NotFound, Unavailable
from crm_store.models import AuditLog, Employee, Interaction, Outbox, Ticket

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ)
KETTLE = "电热水壶一直漏水，今天插上电一碰外壳还漏电，太吓人了"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("快递三天了还没到，物流信息一直不更新", "物流配送"),
        ("我的包裹显示已签收但我根本没收到", "物流配送"),
        ("发货太慢了，下单一周都没发", "物流配送"),
        ("快递员直接放门口就走了，东西丢了", "物流配送"),
        ("寄错了颜色，我买的是黑色的", "物流配送"),
        ("少发了一件，订单里有两个只到了一个", "物流配送"),
        ("物流延误，说好昨天送达的", "物流配送"),
        ("买的东西到现在都没见着", "物流配送"),
        ("耳机用了两天就坏了", "产品质量"),
        ("收到的水壶外壳破损了", "产品质量"),
        ("净化器开机有异响，声音很大", "产品质量"),
        ("手环充不进电，完全不能用", "产品质量"),
        ("咖啡豆过期了，还有股异味", "产品质量"),
        ("这个椅子质量太差了，扶手断了", "产品质量"),
        ("电热水壶漏电，手碰到被电了一下", "产品质量"),
        ("扫地机器人老是死机", "产品质量"),
        ("说是全新的，结果有使用痕迹", "产品质量"),
        ("客服态度太差了，问两句就不耐烦", "服务态度"),
        ("打了好几次电话都没人接", "服务态度"),
        ("在线客服一直不回复，爱答不理的", "服务态度"),
        ("你们的人互相推诿，踢皮球", "服务态度"),
        ("快递员态度很差，还骂人", "服务态度"),
        ("热线一直打不通", "服务态度"),
        ("刚买三天就降价了，要求退差价", "价格争议"),
        ("结账的时候多收了我五十块钱", "价格争议"),
        ("优惠券没有用上，价格不对", "价格争议"),
        ("同一笔订单扣款扣了两次", "价格争议"),
        ("发票金额和实际付款对不上", "价格争议"),
        ("退款到现在还没到账", "价格争议"),
        ("空调坏了想约个师傅上门修", "售后维修"),
        ("净化器异响需要上门维修", "售后维修"),
        ("还在保修期内，能不能免费维修", "售后维修"),
        ("送去返修一个月了还没修好", "售后维修"),
        ("申请换货一直没人处理", "售后维修"),
        ("质量没问题，就是快递太慢了", "物流配送"),
        ("东西挺好的，就是客服不理人", "服务态度"),
        ("Ｋｕａｉｄｉ 快 递 没 到", "物流配送"),
        ("我想说一下你们的包装设计不太好看", "其他"),
        ("我想提个建议", "其他"),
        ("", "其他"),
    ],
)
def test_infer_category(text: str, category: str) -> None:
    assert infer_category(text) == category


def test_severity_words_and_hotlines() -> None:
    assert severity_words("孩子吃了以后食物中毒住院了") == ["住院", "食物中毒"]
    assert severity_words("再不处理我就打12315") == ["12315"]
    assert severity_words("我要去３１５投诉你们") == ["315"]
    # A phone number that contains 315 or 12315 is no threat.
    assert severity_words("我的电话是13153151234，订单号SO202612315000") == []
    assert severity_words("耳机左耳没声音") == []


def test_leaking_kettle_with_electric_shock_is_high(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        priority, reasons = complaint_priority(session, customer_id="C0001", text=KETTLE, today=TODAY)
    assert priority == "高"
    assert any("漏电" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("category", "priority"),
    [
        ("产品质量", "中"),
        ("物流配送", "中"),
        ("售后维修", "中"),
        ("服务态度", "低"),
        ("价格争议", "低"),
        ("其他", "低"),
    ],
)
def test_baseline_by_category(demo_store: sessionmaker[Session], category: str, priority: str) -> None:
    with demo_store() as session:
        # C0002 has no ticket and is a 小客户: only the baseline applies.
        assert complaint_priority(
            session, customer_id="C0002", text="有点问题", today=TODAY, category=category
        ) == (priority, [f"{category}类投诉起始为{priority}"])


def test_category_is_inferred_when_not_given(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        assert complaint_priority(session, customer_id=None, text="快递延误一周", today=TODAY)[0] == "中"
        assert complaint_priority(session, customer_id=None, text="客服态度不好", today=TODAY)[0] == "低"


def test_repeat_complaint_within_30_days_goes_one_level_up(demo_store: sessionmaker[Session]) -> None:
    # C0001 has T09001, opened 2026-11-20.
    with demo_store() as session:
        priority, reasons = complaint_priority(
            session, customer_id="C0001", text="客服态度不好", today=TODAY, category="服务态度"
        )
        assert (priority, reasons[-1]) == ("中", "30 天内重复投诉，升一级")
        on_day_30 = complaint_priority(
            session, customer_id="C0001", text="客服态度不好", today=date(2026, 12, 20), category="服务态度"
        )
        on_day_31 = complaint_priority(
            session, customer_id="C0001", text="客服态度不好", today=date(2026, 12, 21), category="服务态度"
        )
    assert (on_day_30[0], on_day_31[0]) == ("中", "低")


def test_key_customer_goes_one_level_up(demo_store: sessionmaker[Session]) -> None:
    # C0003 is among the top 20% by spend and has no ticket.
    with demo_store() as session:
        assert complaint_priority(
            session, customer_id="C0003", text="客服态度不好", today=TODAY, category="服务态度"
        ) == ("中", ["服务态度类投诉起始为低", "关键客户，升一级"])
        assert complaint_priority(session, customer_id="C0003", text="耳机坏了", today=TODAY)[0] == "高"


def test_repeat_and_key_together_are_capped_at_high(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        _file(session, customer_id="C0003", description="客服态度不好", category="服务态度")
    with demo_store() as session:
        priority, reasons = complaint_priority(
            session, customer_id="C0003", text="快递又延误了", today=TODAY, category="物流配送"
        )
    assert priority == "高"
    assert reasons == ["物流配送类投诉起始为中", "30 天内重复投诉，升一级", "关键客户，升一级"]


def test_sla_deadlines() -> None:
    assert SLA_HOURS == {"高": 4, "中": 24, "低": 72}
    assert sla_deadline("高", NOW) == NOW + timedelta(hours=4)
    assert sla_deadline("中", NOW) == NOW + timedelta(days=1)
    assert sla_deadline("低", NOW) == NOW + timedelta(days=3)
    in_utc = sla_deadline("高", datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    assert in_utc.tzinfo == clock.TZ and in_utc.hour == 14
    with pytest.raises(Invalid) as unknown:
        sla_deadline("紧急", NOW)
    assert (unknown.value.code, unknown.value.field) == ("priority_unknown", "priority")
    # A naive time is the caller's programming error, not a refusal.
    with pytest.raises(TypeError):
        sla_deadline("高", datetime(2026, 11, 23, 10, 0))


def test_pick_assignee_by_region_with_fallbacks(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        assert pick_assignee(session, region="华东").employee_id == "E06"
        assert pick_assignee(session, region="华北").employee_id == "E07"
        # No service staff in 华南: any service agent.
        assert pick_assignee(session, region="华南").role == "service"
        assert pick_assignee(session, region=None).role == "service"
    with demo_store.begin() as session:
        for employee in session.scalars(select(Employee).where(Employee.role == "service")):
            employee.role = "sales"
    with demo_store() as session:
        assert pick_assignee(session, region="华东").employee_id == "E08"


def test_round_robin_alternates_between_two_agents_of_a_region(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        session.add(Employee(employee_id="E09", name="林晓", role="service", region="华东"))
    assignees = []
    for minute in range(4):
        with demo_store.begin() as session:
            receipt = _file(session, customer_id="C0012", now=NOW + timedelta(minutes=minute))
            assignees.append(session.get_one(Ticket, receipt.ticket_id).assignee_id)
    assert assignees == ["E06", "E09", "E06", "E09"]
    # 华北 is untouched by 华东's rotation.
    with demo_store() as session:
        assert pick_assignee(session, region="华北").employee_id == "E07"


def _file(
    session: Session,
    *,
    customer_id: str | None = "C0001",
    description: str = KETTLE,
    category: str = "产品质量",
    order_id: str | None = None,
    now: datetime = NOW,
    request_key: str | None = None,
) -> ComplaintReceipt:
    return create_complaint(
        session,
        customer_id=customer_id,
        order_id=order_id,
        description=description,
        category=category,
        contact_phone="182 0116 4104",
        now=now,
        request_key=request_key,
    )


def _counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Ticket, Interaction, Outbox, AuditLog)
    }


def test_kettle_complaint_of_c0001_files_a_high_ticket(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        before = _counts(session)
    with demo_store.begin() as session:
        receipt = _file(session, order_id="SO202602250002")
    assert receipt == ComplaintReceipt(
        ticket_id="T09002",
        category="产品质量",
        priority="高",
        priority_reasons=receipt.priority_reasons,
        deadline=NOW + timedelta(hours=4),
        assignee_role="华东区客服专员",
        status="新建",
        created=True,
    )
    assert receipt.deadline.tzinfo == clock.TZ

    with demo_store() as session:
        after = _counts(session)
        assert {table: after[table] - before[table] for table in after} == {
            "tickets": 1,
            "interactions": 1,
            "outbox": 1,
            "audit_log": 1,
        }
        ticket = session.get_one(Ticket, "T09002")
        assert (ticket.customer_id, ticket.order_id, ticket.status, ticket.priority, ticket.assignee_id) == (
            "C0001",
            "SO202602250002",
            "新建",
            "高",
            "E06",
        )
        assert (ticket.opened_at, ticket.due_at, ticket.channel, ticket.contact_phone) == (
            TODAY,
            NOW + timedelta(hours=4),
            "web",
            "18201164104",
        )
        assert ticket.description == KETTLE
        assert ticket.summary == KETTLE  # short enough to be its own summary

        interaction = session.scalars(select(Interaction).where(Interaction.summary.contains("T09002"))).one()
        assert (
            interaction.customer_id,
            interaction.employee_id,
            interaction.kind,
            interaction.occurred_at,
        ) == (
            "C0001",
            "E06",
            "消息",
            TODAY,
        )
        assert interaction.interaction_id == "I09002"  # after the demo's I09001

        notice = session.scalars(select(Outbox)).one()
        # The owner (E02 王丽) hears of it; the customer is only what it is about.
        assert (notice.employee_id, notice.customer_id, notice.kind, notice.dedupe_key) == (
            "E02",
            "C0001",
            "ticket_notice",
            "ticket_notice:T09002",
        )
        assert "T09002" in notice.body and "18201164104" not in notice.body

        audit = session.scalars(select(AuditLog)).one()
        assert (audit.action, audit.entity, audit.entity_id, audit.actor_id) == (
            "create_ticket",
            "ticket",
            "T09002",
            "C0001",
        )
        assert "18201164104" not in str(audit.detail) and KETTLE not in str(audit.detail)


def test_ticket_ids_increase(demo_store: sessionmaker[Session]) -> None:
    ids = []
    for _ in range(3):
        with demo_store.begin() as session:
            ids.append(_file(session).ticket_id)
    assert ids == ["T09002", "T09003", "T09004"]


def test_several_complaints_in_one_transaction_get_distinct_ids(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        ids = [_file(session).ticket_id for _ in range(3)]
    assert ids == ["T09002", "T09003", "T09004"]


def test_a_rolled_back_complaint_leaves_nothing(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        before = _counts(session)
    with demo_store() as session:
        _file(session)
        session.rollback()
    with demo_store() as session:
        assert _counts(session) == before


def test_concurrent_complaints_get_distinct_ids(demo_store: sessionmaker[Session]) -> None:
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with demo_store.begin() as session:
                results["second"] = _file(session, customer_id="C0012").ticket_id
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    with demo_store.begin() as session:
        results["first"] = _file(session).ticket_id
        # The other writer starts while this transaction still holds T09002, uncommitted.
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=0.5)
    thread.join(timeout=30)
    assert not errors and not thread.is_alive()
    assert results == {"first": "T09002", "second": "T09003"}


def test_the_same_request_files_one_ticket(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        first = _file(session, request_key="conv-1:1700000000.5")
    with demo_store() as session:
        before = _counts(session)
    with demo_store.begin() as session:
        again = _file(session, request_key="conv-1:1700000000.5", now=NOW + timedelta(seconds=30))
    assert (again.ticket_id, again.created, first.created) == ("T09002", False, True)
    assert (again.priority, again.deadline, again.assignee_role) == (
        first.priority,
        first.deadline,
        first.assignee_role,
    )
    with demo_store() as session:
        assert _counts(session) == before


def test_a_complaint_without_verified_customer(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        receipt = _file(session, customer_id=None, description="客服态度不好", category="服务态度")
    assert (receipt.priority, receipt.deadline) == ("低", NOW + timedelta(hours=72))
    with demo_store() as session:
        ticket = session.get_one(Ticket, receipt.ticket_id)
        assert ticket.customer_id is None and ticket.assignee_id is not None
        assert session.scalar(select(func.count()).select_from(Interaction)) == 41  # none added
        notice = session.scalars(select(Outbox)).one()
        # No owner to tell: the assignee hears of it.
        assert (notice.employee_id, notice.customer_id) == (ticket.assignee_id, None)


def test_long_descriptions_are_summarised(demo_store: sessionmaker[Session]) -> None:
    description = "耳机" + "声音断断续续" * 30
    with demo_store.begin() as session:
        receipt = _file(session, description=description)
    with demo_store() as session:
        ticket = session.get_one(Ticket, receipt.ticket_id)
    assert ticket.summary == description[:60] + "…"
    assert ticket.description == description


@pytest.mark.parametrize(
    ("changes", "error", "code", "data"),
    [
        ({"description": "   "}, Invalid, "description_empty", {"field": "description"}),
        (
            {"description": "坏" * 2001},
            Invalid,
            "description_too_long",
            {"field": "description", "limit": 2000},
        ),
        ({"category": "投诉"}, Invalid, "category_unknown", {"field": "category"}),
        ({"contact_phone": "12345"}, Invalid, "contact_phone_invalid", {"field": "contact_phone"}),
        ({"channel": "fax"}, Invalid, "channel_unknown", {"field": "channel"}),
        ({"order_id": "SO2026"}, Invalid, "order_id_malformed", {"field": "order_id"}),
        (  # C0005's order
            {"order_id": "SO202611100004"},
            Invalid,
            "order_of_another_customer",
            {"field": "order_id", "order_id": "SO202611100004"},
        ),
        ({"order_id": "SO209912319999"}, NotFound, "order_not_found", {"order_id": "SO209912319999"}),
        ({"customer_id": "C0999"}, NotFound, "customer_not_found", {"customer_id": "C0999"}),
        (
            {"customer_id": None, "order_id": "SO202611180001"},
            Invalid,
            "order_of_another_customer",
            {"field": "order_id", "order_id": "SO202611180001"},
        ),
    ],
)
def test_invalid_complaints_are_refused_and_write_nothing(
    demo_store: sessionmaker[Session],
    changes: dict[str, str | None],
    error: type[CrmError],
    code: str,
    data: dict[str, object],
) -> None:
    fields: dict[str, str | None] = {
        "customer_id": "C0001",
        "order_id": None,
        "description": KETTLE,
        "category": "产品质量",
        "contact_phone": "18201164104",
        "channel": "web",
    } | changes
    with demo_store() as session:
        before = _counts(session)
    with pytest.raises(error) as refused, demo_store.begin() as session:
        create_complaint(
            session,
            customer_id=fields["customer_id"],
            order_id=fields["order_id"],
            description=str(fields["description"]),
            category=str(fields["category"]),
            contact_phone=str(fields["contact_phone"]),
            channel=str(fields["channel"]),
            now=NOW,
        )
    assert (refused.value.code, refused.value.data) == (code, data)
    # The error's text reaches logs: never the description or the phone.
    assert KETTLE not in str(refused.value) and "18201164104" not in str(refused.value)
    with demo_store() as session:
        assert _counts(session) == before


def test_status_of_the_demo_ticket(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = ticket_status(session, ticket_id=" t09001 ", now=NOW)
    assert view is not None
    assert (view.ticket_id, view.status, view.category, view.priority, view.assignee_role) == (
        "T09001",
        "处理中",
        "物流配送",
        "中",
        "华东区客服专员",
    )
    # Imported with a date only: 24 h from when service opened on 2026-11-20, long past on the 23rd.
    assert view.deadline == datetime(2026, 11, 21, 9, 0, tzinfo=clock.TZ)
    assert view.is_open and view.is_overdue


def test_status_of_a_new_ticket_becomes_overdue_after_its_deadline(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        ticket_id = _file(session).ticket_id
    with demo_store() as session:
        fresh = ticket_status(session, ticket_id=ticket_id, now=NOW + timedelta(hours=3, minutes=59))
        late = ticket_status(session, ticket_id=ticket_id, now=NOW + timedelta(hours=4, minutes=1))
    assert fresh is not None and late is not None
    assert (fresh.status, fresh.is_overdue, late.is_overdue) == ("新建", False, True)
    assert fresh.deadline == NOW + timedelta(hours=4)


def test_a_closed_ticket_is_never_overdue(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        view = ticket_status(session, ticket_id="T00012", now=NOW)
    assert view is not None and view.status == "已关闭"
    assert not view.is_open and not view.is_overdue


@pytest.mark.parametrize("ticket_id", ["T99999", "T0", "09001", "T09001' OR '1'='1", "", "T" * 100])
def test_status_of_unknown_or_malformed_tickets(demo_store: sessionmaker[Session], ticket_id: str) -> None:
    with demo_store() as session:
        assert ticket_status(session, ticket_id=ticket_id, now=NOW) is None


def test_parse_ticket_id() -> None:
    assert parse_ticket_id("Ｔ０９００１") == "T09001"
    assert parse_ticket_id("T 09001") == "T09001"
    assert parse_ticket_id("工单T09001") is None


def test_open_tickets_newest_first(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        assert [v.ticket_id for v in open_tickets(session, customer_id="C0001", now=NOW)] == ["T09001"]
        assert open_tickets(session, customer_id="C0002", now=NOW) == []
    with demo_store.begin() as session:
        _file(session)
    with demo_store() as session:
        views = open_tickets(session, customer_id="C0001", now=NOW)
    assert [(v.ticket_id, v.assignee_role) for v in views] == [
        ("T09002", "华东区客服专员"),
        ("T09001", "华东区客服专员"),
    ]


def test_rate_ticket(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        rate_ticket(session, ticket_id="T09001", rating=4, now=NOW)
    with demo_store.begin() as session:
        rate_ticket(session, ticket_id="t09001", rating=5, now=NOW)
    with demo_store() as session:
        ticket = session.get_one(Ticket, "T09001")
        assert (ticket.rating, ticket.rated_at) == (5, NOW)
        view = ticket_status(session, ticket_id="T09001", now=NOW)
        assert view is not None and view.rating == 5


@pytest.mark.parametrize("rating", [0, 6, -1, True, 4.5, "5"])
def test_rate_ticket_refuses_anything_but_1_to_5(demo_store: sessionmaker[Session], rating: object) -> None:
    with pytest.raises(Invalid) as refused, demo_store.begin() as session:
        rate_ticket(session, ticket_id="T09001", rating=rating, now=NOW)  # type: ignore[arg-type]
    assert (refused.value.code, refused.value.data) == (
        "rating_out_of_range",
        {"field": "rating", "min": 1, "max": 5},
    )
    with demo_store() as session:
        assert session.get_one(Ticket, "T09001").rating is None


def test_rate_an_unknown_ticket(demo_store: sessionmaker[Session]) -> None:
    with pytest.raises(NotFound) as refused, demo_store.begin() as session:
        rate_ticket(session, ticket_id="T99999", rating=3, now=NOW)
    assert (refused.value.code, refused.value.data) == ("ticket_not_found", {"ticket_id": "T99999"})


def test_without_any_staff_a_complaint_cannot_be_assigned(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, pytest.raises(Unavailable) as refused:
        pick_assignee(session, region="华东")
    assert (refused.value.code, refused.value.data) == ("no_assignee", {"region": "华东"})


# --- what the chat's complaint form collected ----------------------------------------------------


def _chat_complaint(session: Session, **fields: str | None) -> ComplaintReceipt:
    arguments: dict[str, str | None] = {
        "customer_id": None,
        "order": NO_ORDER,
        "description": "耳机左耳没有声音",
        "category": "产品质量",
        "contact_phone": "13800138000",
        "request_key": "web-form:1",
    } | fields
    return file_chat_complaint(session, now=NOW, **arguments)  # type: ignore[arg-type]


def test_an_unverified_sender_names_an_order_only_in_the_description(
    demo_store: sessionmaker[Session],
) -> None:
    with demo_store.begin() as session:
        receipt = _chat_complaint(session, order="SO202611180001")
    with demo_store() as session:
        ticket = session.get_one(Ticket, receipt.ticket_id)
    assert (ticket.customer_id, ticket.order_id, ticket.channel) == (None, None, "web")
    assert ticket.description == "耳机左耳没有声音（提到的订单：SO202611180001，身份未核实）"


def test_a_verified_customer_uses_the_phone_on_file(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        receipt = _chat_complaint(
            session,
            customer_id="C0001",
            order="SO202611180001",
            contact_phone=REGISTERED_PHONE,
            category=None,
        )
    with demo_store() as session:
        ticket = session.get_one(Ticket, receipt.ticket_id)
    assert (ticket.customer_id, ticket.order_id, ticket.contact_phone, ticket.category) == (
        "C0001",
        "SO202611180001",
        "18201164104",
        "其他",
    )


def test_the_phone_on_file_is_no_phone_for_a_sender_not_verified(demo_store: sessionmaker[Session]) -> None:
    with pytest.raises(Invalid) as refused, demo_store.begin() as session:
        _chat_complaint(session, contact_phone=REGISTERED_PHONE)
    assert refused.value.code == "contact_phone_invalid"


def test_the_same_form_files_one_ticket(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        first = _chat_complaint(session)
    with demo_store.begin() as session:
        again = _chat_complaint(session)
    assert (again.ticket_id, again.created) == (first.ticket_id, False)


def test_a_complaint_filed_at_night_falls_due_after_service_opens() -> None:
    night = datetime(2026, 11, 23, 23, 0, tzinfo=clock.TZ)

    assert sla_deadline("高", night) == datetime(2026, 11, 24, 13, 0, tzinfo=clock.TZ)
    early = datetime(2026, 11, 24, 6, 30, tzinfo=clock.TZ)
    assert sla_deadline("中", early) == datetime(2026, 11, 25, 9, 0, tzinfo=clock.TZ)
