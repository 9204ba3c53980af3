"""Personal data on request: export, erasure and retention, on the demo store and a tracker store
written the way Rasa's SQLTrackerStore writes it (`tests.store.test_service_metrics.Tracker`), on
both backends.

The erasure test scans every text column of every table of the store (and of the tracker store, a
file of its own on SQLite) for 钱娟's name, phone and e-mail, as typed and as JSON escapes them.
"""

import json
import warnings
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, String, Text, create_engine, func, select, text
from sqlalchemy.exc import SAWarning
from sqlalchemy.orm import Session, sessionmaker

import care.scheduler as care_scheduler
from care.scheduler import (
    JOB_CONVERSATION_RETENTION,
    build_scheduler,
    conversation_retention_job,
    install_jobs,
    stop_scheduler,
)
from crm_store import clock
from crm_store.access import Actor, actor_for
from crm_store.complaints import create_complaint
from crm_store.errors import Forbidden, NotFound
from crm_store.faqs import record_feedback, record_unanswered
from crm_store.handoff import add_staff_reply, open_handoff
from crm_store.identity import verify_customer
from crm_store.models import AuditLog, Customer, FaqUnanswered, HandoffCase, Order, OrderItem, Outbox
from crm_store.personal_data import (
    ANONYMOUS_NAME,
    erase_customer,
    export_customer,
    forget_old_conversations,
    tracker_store,
)
from crm_store.settings import AnalyticsSettings, CareSettings, PrivacySettings
from crm_store.vocab import HANDOFF_REASON_ASKED
from crm_store.wechat_links import link, wechat_conversation
from tests.store.test_service_metrics import Tracker

NAME, PHONE, EMAIL = "钱娟", "18027166039", "c0058@example.com"
NEEDLES = (NAME, PHONE, EMAIL, json.dumps(NAME)[1:-1])


@pytest.fixture
def tracker(store_engine: Engine, tmp_path: Path) -> Iterator[Tracker]:
    """Rasa's tracker beside the store: its own SQLite file, or the same PostgreSQL database."""
    if store_engine.dialect.name == "postgresql":
        yield Tracker(store_engine)
        return
    engine = create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    try:
        yield Tracker(engine)
    finally:
        engine.dispose()


@pytest.fixture
def writer(tracker: Tracker) -> Iterator[Engine]:
    engine = tracker_store(tracker.engine.url.render_as_string(hide_password=False))
    assert engine is not None
    yield engine
    engine.dispose()


def admin(session: Session) -> Actor:
    return actor_for(session, "E08")


def now() -> datetime:
    return datetime.now(clock.TZ)


def test_export_holds_the_customers_orders_and_her_conversation(
    demo_store: sessionmaker[Session], tracker: Tracker, writer: Engine
) -> None:
    t = tracker
    t.slot("web-zw", now(), "verified_customer_id", "C0001")
    t.turn(
        "web-zw", now(), "我的订单 SO202611180001 到哪了", "check_order_status", "action_check_order_status"
    )
    t.turn("web-other", now(), "怎么退货", "faq", "action_answer_faq")
    with demo_store.begin() as session:
        record_unanswered(session, "你们周末送货吗")
        t.user("web-zw", now(), "你们周末送货吗", "nlu_fallback")
        data = export_customer(session, admin(session), "C0001", tracker=writer)

    with demo_store() as session:
        orders = set(session.scalars(select(Order.order_id).where(Order.customer_id == "C0001")))
        audited = session.scalars(select(AuditLog).where(AuditLog.action == "export_personal_data")).one()
    assert data["profile"]["name"] == "张伟" and data["profile"]["phone"] == "18201164104"
    assert {o["order_id"] for o in data["orders"]} == orders and len(orders) >= 4
    assert all(o["items"] for o in data["orders"])
    [conversation] = data["conversations"]
    assert conversation["conversation"] == "web-zw"
    said = [m["text"] for m in conversation["messages"] if m["who"] == "customer"]
    assert said == ["我的订单 SO202611180001 到哪了", "你们周末送货吗"]
    assert [q["question"] for q in data["unanswered_questions"]] == ["你们周末送货吗"]
    assert json.dumps(data, ensure_ascii=False)  # JSON-ready as it is
    assert audited.entity_id == "C0001" and "orders" in audited.detail["fields"]
    assert "张伟" not in json.dumps(audited.detail, ensure_ascii=False)


def test_only_an_admin_may_export_or_erase(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        for employee in ("E01", "E05", "E06"):
            with pytest.raises(Forbidden):
                export_customer(session, actor_for(session, employee), "C0058")
            with pytest.raises(Forbidden):
                erase_customer(session, actor_for(session, employee), "C0058")
        with pytest.raises(NotFound) as missing:
            erase_customer(session, admin(session), "C9999")
        assert missing.value.code == "customer_not_found" and missing.value.data == {"customer_id": "C9999"}
        assert session.get(Customer, "C0058").name == NAME  # type: ignore[union-attr]


def _leaks(engine: Engine) -> list[str]:
    """Every (table.column) cell of every table holding one of the needles, as typed or JSON-escaped."""
    found: list[str] = []
    metadata = MetaData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # expression indexes: not needed to read cells
        metadata.reflect(engine)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String | Text) and "JSON" not in str(column.type).upper():
                    continue
                for value in connection.scalars(select(column).where(column.is_not(None))):
                    cell = value if isinstance(value, str) else json.dumps(value)
                    found += [f"{table.name}.{column.name}" for needle in NEEDLES if needle in cell]
    return found


def _her_sales(session: Session) -> tuple[Decimal, int, int]:
    amount, orders = session.execute(
        select(func.sum(Order.amount), func.count()).where(Order.customer_id == "C0058")
    ).one()
    items = session.scalar(
        select(func.count()).select_from(OrderItem).join(Order).where(Order.customer_id == "C0058")
    )
    return Decimal(amount), int(orders), int(items or 0)


def test_after_erasure_her_name_and_phone_are_nowhere_and_her_sales_stay(
    demo_store: sessionmaker[Session], tracker: Tracker, writer: Engine, store_engine: Engine
) -> None:
    t = tracker
    # Her web chat (verified: slot and audit row), a hand-off, a complaint, a vote, an unanswered
    # question; a WeChat conversation; a conversation known only from the audit trail; a staff
    # chat and another customer's notes naming her.
    with demo_store.begin() as session:
        assert verify_customer(
            session, conversation="web-qj", phone=PHONE, order_id="SO202610060235"
        ).verified
        assert verify_customer(
            session, conversation="web-audit-only", phone=PHONE, order_id="SO202610060235"
        ).verified
        link(session, "oQJ123", "C0058", actor=Actor(role="customer"))
        before = _her_sales(session)
        session.get(Customer, "C0001").notes = f"{NAME}的朋友，电话 {PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}"  # type: ignore[union-attr]
        create_complaint(
            session,
            customer_id="C0058",
            order_id="SO202610060235",
            description=f"我是{NAME}，快递把箱子压坏了，请打 {PHONE}",
            category="物流配送",
            contact_phone=PHONE,
            now=clock.now(),
        )
        case = open_handoff(
            session,
            conversation="web-qj",
            reason=HANDOFF_REASON_ASKED,
            customer_id="C0058",
            transcript=[{"who": "customer", "text": f"我是{NAME}，转人工", "at": now()}],
        ).case
        add_staff_reply(session, case_id=case.id, text=f"{NAME}您好，我是客服", staff_id="E06")
        record_feedback(session, "F001", helpful=False, sender_id="web-qj", query=f"{NAME}问怎么退货")
        record_unanswered(session, f"{NAME}的积分怎么查")
        session.add(
            Outbox(
                customer_id="C0058",
                channel="email",
                kind="birthday",
                body=f"{NAME}您好，祝您生日快乐",
                dedupe_key="birthday:C0058:2026",
            )
        )
    t.slot("web-qj", now(), "verified_customer_id", "C0058")
    t.slot("web-qj", now(), "verify_phone", PHONE)
    t.turn("web-qj", now(), f"我是{NAME}，我的邮箱是{EMAIL}", "inform", "action_check_order_status")
    t.user("web-qj", now(), f"{NAME}的积分怎么查", "nlu_fallback")
    t.turn(wechat_conversation("oQJ123"), now(), "我的订单呢", "check_order_status")
    t.turn("web-audit-only", now(), f"手机 {PHONE}", "inform")
    t.turn("staff:E05:web-x", now(), f"{NAME}最近买了什么", "staff_query_customer")
    t.turn("web-someone-else", now(), "怎么退货", "faq", "action_answer_faq")
    with writer.connect() as connection:
        events_before = connection.scalar(text("SELECT count(*) FROM events"))
        senders_before = connection.scalar(text("SELECT count(DISTINCT sender_id) FROM events"))
    assert _leaks(store_engine)

    with demo_store.begin() as session:
        report = erase_customer(session, admin(session), "C0058", tracker=writer)
    assert report.conversations == 3 and report.handoff_cases == 1 and report.tickets == 1
    assert not report.already_erased

    leaks = _leaks(store_engine) + (_leaks(tracker.engine) if tracker.engine is not store_engine else [])
    assert leaks == []
    with demo_store() as session:
        assert _her_sales(session) == before
        customer = session.get(Customer, "C0058")
        assert customer is not None and customer.name == ANONYMOUS_NAME and customer.opt_out
        assert (customer.phone, customer.email, customer.notes, customer.birthday) == (None,) * 4
        assert session.scalars(select(Outbox.status).where(Outbox.customer_id == "C0058")).all() == [
            "skipped"
        ] * len(session.scalars(select(Outbox.id).where(Outbox.customer_id == "C0058")).all())
        assert session.scalars(select(HandoffCase.status)).all() == ["closed"]
        # The masked question still counts as one asked once.
        assert session.scalar(select(FaqUnanswered.question)) == "***的积分怎么查"
        assert session.get(Customer, "C0001").notes.startswith("***的朋友")  # type: ignore[union-attr]
    with writer.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM events")) == events_before
        assert connection.scalar(text("SELECT count(DISTINCT sender_id) FROM events")) == senders_before
        other = connection.scalar(
            text("SELECT data FROM events WHERE sender_id = 'web-someone-else' LIMIT 1")
        )
        assert json.loads(other)["text"] == "怎么退货"

    # Again: nothing left to remove, and it says it was erased before.
    with demo_store.begin() as session:
        again = erase_customer(session, admin(session), "C0058", tracker=writer)
        assert again.already_erased and again.tickets == 1
        assert (
            export_customer(session, admin(session), "C0058", tracker=writer)["profile"]["name"]
            == ANONYMOUS_NAME
        )
    assert _leaks(store_engine) == []
    with demo_store() as session:
        assert _her_sales(session) == before


def test_retention_blanks_old_conversation_texts_and_keeps_recent_ones(
    demo_store: sessionmaker[Session], tracker: Tracker, writer: Engine
) -> None:
    old, recent = now() - timedelta(days=200), now() - timedelta(days=10)
    tracker.turn("web-old", old, "我叫钱娟，查订单", "check_order_status", "action_check_order_status")
    tracker.slot("web-old", old, "complaint_description", "箱子坏了")
    tracker.turn("web-new", recent, "怎么退货", "faq", "action_answer_faq")
    with demo_store.begin() as session:
        open_handoff(
            session,
            conversation="web-old",
            reason=HANDOFF_REASON_ASKED,
            transcript=[{"who": "customer", "text": "转人工", "at": old}],
            now=clock.crm_time(old),
        )
    cutoff = clock.now() - timedelta(days=180)
    with demo_store.begin() as session:
        first = forget_old_conversations(session, writer, before=cutoff)
    with demo_store.begin() as session:
        second = forget_old_conversations(session, writer, before=cutoff)
    assert (first.tracker_events, first.handoff_cases) == (
        3,
        1,
    )  # the user's, the bot's and the slot's; the case
    assert (second.tracker_events, second.handoff_cases) == (0, 0)
    with writer.connect() as connection:
        rows = {
            (sender, kind): json.loads(data)
            for sender, kind, data in connection.execute(
                text("SELECT sender_id, type_name, data FROM events")
            )
        }
    assert rows[("web-old", "user")]["text"] == "" and rows[("web-old", "user")]["parse_data"]["text"] == ""
    assert rows[("web-old", "bot")]["text"] == "" and rows[("web-old", "slot")]["value"] is None
    assert rows[("web-new", "user")]["text"] == "怎么退货"
    with demo_store() as session:
        [transcript] = session.scalars(select(HandoffCase.transcript)).all()
    assert [entry["text"] for entry in transcript] == [""]


def test_the_care_schedulers_nightly_job_applies_the_retention_setting(
    demo_store: sessionmaker[Session], tracker: Tracker, store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker.turn("web-a", now() - timedelta(days=40), "我叫钱娟", "greet")
    tracker.turn("web-b", now() - timedelta(days=20), "怎么退货", "faq")
    monkeypatch.setenv("CRM_TRACKER_URL", tracker.engine.url.render_as_string(hide_password=False))
    privacy = PrivacySettings(conversation_retention_days=30, conversation_retention_time=time(4, 5))
    context = care_scheduler._Context(demo_store, CareSettings(), privacy=privacy)
    monkeypatch.setattr(care_scheduler, "_context", context)

    scheduler = build_scheduler(store_engine)
    scheduler.start(paused=True)
    try:
        install_jobs(scheduler, CareSettings(), now=now(), analytics=AnalyticsSettings(), privacy=privacy)
        job = scheduler.get_job(JOB_CONVERSATION_RETENTION)
    finally:
        stop_scheduler(scheduler)
    following = job.trigger.get_next_fire_time(None, datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ))
    assert following == datetime(2026, 11, 24, 4, 5, tzinfo=clock.TZ)

    conversation_retention_job()
    with tracker.engine.connect() as connection:
        said = {
            sender: json.loads(data)["text"]
            for sender, data in connection.execute(
                text("SELECT sender_id, data FROM events WHERE type_name = 'user'")
            )
        }
    assert said == {"web-a": "", "web-b": "怎么退货"}
