"""Service metrics over a tracker store built here from Rasa 3.6's real event shapes, on both backends.

The tracker is Rasa's `events` table (rasa/core/tracker_store.py `SQLEvent`), created here with its
own DDL and filled with the JSON that `Event.as_dict()` gives, the way `SQLTrackerStore.save` does:
beside the store in its own SQLite file, or in the same PostgreSQL database, as `crmbot up` places it.
Every expected figure is counted by hand from the conversations written below.
"""

import json
import time as real_time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.access import CUSTOMER, Actor, actor_for
from crm_store.analytics.service_metrics import (
    FALLBACK_ACTIONS,
    SELF_SERVICE_ACTIONS,
    ServiceMetrics,
    service_metrics,
    tracker_engine,
)
from crm_store.analytics.spec import Period
from crm_store.complaints import rate_ticket
from crm_store.errors import Forbidden
from crm_store.handoff import open_handoff, rate_handoff
from crm_store.models import Outbox
from crm_store.settings import PROJECT_ROOT
from crm_store.vocab import HANDOFF_REASON_ASKED

NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30), "2026年11月")


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A moment in Beijing time."""
    return datetime(2026, month, day, hour, minute, tzinfo=clock.TZ)


# -- Rasa's tracker store ------------------------------------------------------------------------------


def _create_events_table(engine: Engine) -> None:
    key = "id SERIAL PRIMARY KEY" if engine.dialect.name == "postgresql" else "id INTEGER PRIMARY KEY"
    with engine.begin() as connection:
        connection.execute(
            text(
                f"CREATE TABLE events ({key}, sender_id VARCHAR(255) NOT NULL,"
                " type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255),"
                " action_name VARCHAR(255), data TEXT)"
            )
        )
        connection.execute(text("CREATE INDEX ix_events_sender_id ON events (sender_id)"))


class Tracker:
    """Writes events as Rasa's SQLTrackerStore.save does: type, time, intent, action or slot name, JSON."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _create_events_table(engine)

    def _save(self, sender: str, event: dict[str, Any]) -> None:
        intent = event.get("parse_data", {}).get("intent", {}).get("name")
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)"
                    " VALUES (:sender, :type, :timestamp, :intent, :action, :data)"
                ),
                {
                    "sender": sender,
                    "type": event["event"],
                    "timestamp": event["timestamp"],
                    "intent": intent,
                    "action": event.get("name"),
                    "data": json.dumps(event),
                },
            )

    def user(
        self, sender: str, when: datetime | float, words: str, intent: str, channel: str | None = None
    ) -> None:
        stamp = when if isinstance(when, float) else when.timestamp()
        # The gateway stamps the channel into the metadata; the web chat's older turns have none.
        metadata = {} if channel is None else {"channel": channel, "role": "customer"}
        self._save(
            sender,
            {
                "event": "user",
                "timestamp": stamp,
                "metadata": metadata,
                "text": words,
                "parse_data": {
                    "intent": {"name": intent, "confidence": 0.93},
                    "entities": [],
                    "text": words,
                    "message_id": "3c2b0f",
                    "metadata": {},
                    "intent_ranking": [{"name": intent, "confidence": 0.93}],
                },
                "input_channel": "rest",
                "message_id": "3c2b0f",
            },
        )

    def action(self, sender: str, when: datetime | float, name: str) -> None:
        stamp = when if isinstance(when, float) else when.timestamp()
        self._save(
            sender,
            {
                "event": "action",
                "timestamp": stamp,
                "name": name,
                "policy": "RulePolicy",
                "confidence": 1.0,
                "action_text": None,
                "hide_rule_turn": False,
            },
        )

    def bot(self, sender: str, when: datetime, words: str) -> None:
        self._save(
            sender, {"event": "bot", "timestamp": when.timestamp(), "text": words, "data": {}, "metadata": {}}
        )

    def slot(self, sender: str, when: datetime, name: str, value: Any) -> None:
        self._save(sender, {"event": "slot", "timestamp": when.timestamp(), "name": name, "value": value})

    def turn(
        self, sender: str, when: datetime, words: str, intent: str, *actions: str, channel: str | None = None
    ) -> None:
        """A user message, then the bot's actions and its reply, ending with action_listen."""
        self.user(sender, when, words, intent, channel)
        for number, name in enumerate(actions, start=1):
            self.action(sender, when + timedelta(seconds=number), name)
        self.bot(sender, when + timedelta(seconds=len(actions) + 1), "好的")
        self.action(sender, when + timedelta(seconds=len(actions) + 2), "action_listen")


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


def reader(tracker: Tracker) -> Engine:
    """The engine the dashboard reads with: read-only for a SQLite file."""
    engine = tracker_engine(tracker.engine.url.render_as_string(hide_password=False))
    assert engine is not None
    return engine


@pytest.fixture(autouse=True)
def real_calendar(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CRM's calendar is the real one unless a test pins it."""
    monkeypatch.delenv("CRM_TODAY", raising=False)


# -- the November of the demo company --------------------------------------------------------------


def _ticket_of_region(session: Session, region: str, skip: int = 0) -> str:
    return str(
        session.execute(
            text(
                "SELECT t.ticket_id FROM tickets t JOIN customers c ON c.customer_id = t.customer_id"
                " WHERE c.region = :region ORDER BY t.ticket_id LIMIT 1 OFFSET :skip"
            ),
            {"region": region, "skip": skip},
        ).scalar_one()
    )


def _outbox(session: Session, key: str, customer_id: str | None, status: str, created: datetime) -> None:
    session.add(
        Outbox(
            customer_id=customer_id,
            employee_id=None if customer_id else "E02",
            channel="email" if customer_id else "staff_inbox",
            kind="birthday",
            body="生日快乐",
            dedupe_key=key,
            status=status,
            created_at=created,
        )
    )


@pytest.fixture
def november(demo_store: sessionmaker[Session], tracker: Tracker) -> sessionmaker[Session]:
    """Six customer conversations in November, one in October, one of staff, one just after November.

    | conversation | customer           | turns | fallbacks | resolved by          | hand-off | channel  |
    |--------------|--------------------|-------|-----------|----------------------|----------|----------|
    | web-a        | C0001 (华东, slot) | 2     | 1         | order status         | no       | web      |
    | web-b        | —                  | 1     | 0         | a FAQ answered       | no       | wechat   |
    | web-c        | —                  | 2     | 2         | —                    | yes      | (none)   |
    | web-d        | C0003 (华北, slot) | 2     | 0         | order status         | yes      | socketio |
    | web-e        | C0002 (华东, case) | 2     | 0         | — (no FAQ found)     | yes      |
    | web-f        | —                  | 1     | 0         | —  (Nov 30, 23:30)   | no       |
    """
    t = tracker
    t.slot("web-a", at(3, 9, 59), "verified_customer_id", "C0001")
    t.turn(
        "web-a",
        at(3, 10),
        "查一下订单 SO202611180001",
        "check_order_status",
        "order_status_form",
        "action_check_order_status",
        channel="web",
    )
    t.turn("web-a", at(3, 10, 5), "那个那个", "nlu_fallback", "action_handle_fallback")

    t.turn("web-b", at(4, 11), "怎么退货", "faq", "action_answer_faq", channel="wechat")
    t.slot("web-b", at(4, 11, 0) + timedelta(seconds=1), "faq_answered_id", "F001")

    t.turn("web-c", at(10, 9), "嗯嗯", "nlu_fallback", "action_handle_fallback")
    t.slot("web-c", at(10, 9) + timedelta(seconds=2), "faq_answered_id", None)
    t.turn("web-c", at(10, 9, 1), "啊啊", "nlu_fallback", "action_handle_fallback")

    t.slot("web-d", at(12, 14), "verified_customer_id", "C0003")
    t.turn(
        "web-d",
        at(12, 14, 1),
        "订单 SO202611180002 到哪了",
        "check_order_status",
        "action_check_order_status",
        channel="socketio",
    )
    t.turn("web-d", at(12, 14, 3), "转人工", "request_human", "action_request_human")

    t.turn("web-e", at(15, 16), "你们开发票吗", "faq", "action_answer_faq")
    t.slot("web-e", at(15, 16) + timedelta(seconds=2), "faq_answered_id", None)
    t.turn("web-e", at(15, 16, 2), "找人工", "request_human", "action_request_human")

    t.turn("web-f", at(30, 23, 30), "你好", "greet")
    # 00:10 on 1 December in Beijing is still 30 November in UTC: not November's.
    t.turn("web-g", at(1, 0, 10, month=12), "查订单", "check_order_status", "action_check_order_status")
    t.turn("web-old", at(20, 10, month=10), "怎么退货", "faq", "action_answer_faq")
    t.slot("web-old", at(20, 10, month=10) + timedelta(seconds=2), "faq_answered_id", "F001")
    t.turn("staff:E02:web-x", at(5, 9), "我的客户", "staff_my_customers", "action_query_customer")

    with demo_store.begin() as session:
        for sender, customer, when in (
            ("web-c", None, at(10, 9, 2)),
            ("web-d", "C0003", at(12, 14, 4)),
            ("web-e", "C0002", at(15, 16, 3)),
            ("web-old", None, at(20, 10, 1, month=10)),
        ):
            opened = open_handoff(
                session, conversation=sender, reason=HANDOFF_REASON_ASKED, customer_id=customer, now=when
            )
            if sender == "web-c":
                rate_handoff(session, case_id=opened.case.id, rating=4, now=at(10, 12))
            if sender == "web-e":
                rate_handoff(session, case_id=opened.case.id, rating=3, now=at(16, 9))
        rate_ticket(session, ticket_id=_ticket_of_region(session, "华东"), rating=5, now=at(5, 10))
        rate_ticket(session, ticket_id=_ticket_of_region(session, "华北"), rating=2, now=at(6, 10))
        rate_ticket(
            session, ticket_id=_ticket_of_region(session, "华东", skip=1), rating=1, now=at(28, 10, month=10)
        )
        _outbox(session, "a", "C0001", "sent", at(2, 9))
        _outbox(session, "b", "C0001", "failed", at(8, 9))
        _outbox(session, "c", "C0003", "sent", at(9, 9))
        _outbox(session, "d", "C0003", "pending", at(9, 9))
        _outbox(session, "e", "C0001", "sent", at(30, 9, month=10))
        _outbox(session, "f", None, "sent", at(21, 9))
    return demo_store


def _metrics(
    sessions: sessionmaker[Session], tracker: Tracker, who: str | Actor, period: Period = NOVEMBER
) -> ServiceMetrics:
    engine = reader(tracker)
    try:
        with sessions() as session:
            actor = who if isinstance(who, Actor) else actor_for(session, who)
            return service_metrics(session, engine, actor, period=period)
    finally:
        if engine is not tracker.engine:
            engine.dispose()


def test_an_admin_sees_every_conversation_of_the_period(
    november: sessionmaker[Session], tracker: Tracker
) -> None:
    figures = _metrics(november, tracker, "E08")
    assert figures.conversations == 6  # web-a … web-f; not October's, December's or staff's
    # By the channel of their first message; a message without one is the web chat's.
    assert figures.conversations_by_channel == {"web": 4, "wechat": 1, "socketio": 1}
    assert figures.deflected_conversations == 2  # web-a (order status), web-b (FAQ); web-d was handed off
    assert figures.deflection_rate == pytest.approx(2 / 6)
    assert figures.handoff_conversations == 3  # web-c, web-d, web-e
    assert figures.handoff_rate == pytest.approx(3 / 6)
    assert (figures.user_turns, figures.fallback_turns) == (10, 3)
    assert figures.fallback_rate == pytest.approx(3 / 10)
    # Tickets 5 (华东) and 2 (华北), cases 4 (anonymous) and 3 (华东); October's 1 is not November's.
    assert figures.csat_ratings == 4
    assert figures.csat_average == pytest.approx((5 + 2 + 4 + 3) / 4)
    # Sent: C0001, C0003, a staff notice; failed: C0001. Pending and October's do not count.
    assert (figures.care_sent, figures.care_failed) == (3, 1)
    assert figures.care_delivery_rate == pytest.approx(3 / 4)


def test_a_regional_manager_sees_their_regions_customers_only(
    november: sessionmaker[Session], tracker: Tracker
) -> None:
    figures = _metrics(november, tracker, "E01")  # 华东: C0001 (web-a, verified), C0002 (web-e, by its case)
    assert figures.conversations == 2
    assert figures.conversations_by_channel == {"web": 2}
    assert figures.deflected_conversations == 1
    assert figures.handoff_conversations == 1
    assert (figures.user_turns, figures.fallback_turns) == (4, 1)
    assert (figures.csat_ratings, figures.csat_average) == (2, pytest.approx(4.0))
    assert (figures.care_sent, figures.care_failed) == (1, 1)
    assert figures.to_json()["deflection_rate"] == pytest.approx(0.5)


def test_only_managers_and_admins_read_them(november: sessionmaker[Session], tracker: Tracker) -> None:
    with pytest.raises(Forbidden) as sales:
        _metrics(november, tracker, "E02")
    assert sales.value.code == "role_not_allowed"
    with pytest.raises(Forbidden) as customer:
        _metrics(november, tracker, CUSTOMER)
    assert customer.value.code == "staff_only"


def test_a_period_without_conversations_has_no_rates(
    november: sessionmaker[Session], tracker: Tracker
) -> None:
    figures = _metrics(november, tracker, "E08", Period(date(2026, 9, 1), date(2026, 9, 30), "2026年9月"))
    assert figures.conversations == 0
    assert figures.deflection_rate is None and figures.fallback_rate is None and figures.handoff_rate is None
    assert figures.csat_average is None and figures.care_delivery_rate is None


def test_no_tracker_yet_reads_as_no_conversation(demo_store: sessionmaker[Session], tmp_path: Path) -> None:
    assert tracker_engine(f"sqlite:///{tmp_path / 'never-created.db'}") is None
    assert not (tmp_path / "never-created.db").exists()
    with demo_store() as session:
        figures = service_metrics(session, None, actor_for(session, "E08"), period=NOVEMBER)
    assert figures.conversations == 0 and figures.user_turns == 0


def test_a_pinned_day_counts_todays_real_chats_as_that_day(
    demo_store: sessionmaker[Session], tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A demo pins the CRM's day; Rasa stamps the real time. A chat a minute ago is the pinned day's.
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    now = real_time.time() - 60
    tracker.user("web-now", now, "转人工", "request_human")
    tracker.action("web-now", now + 1, "action_request_human")
    with demo_store.begin() as session:
        open_handoff(session, conversation="web-now", reason=HANDOFF_REASON_ASKED)  # at the CRM's now
    today = Period(date(2026, 11, 23), date(2026, 11, 23), "今天")
    figures = _metrics(demo_store, tracker, "E08", today)
    assert (figures.conversations, figures.handoff_conversations) == (1, 1)
    yesterday = Period(date(2026, 11, 22), date(2026, 11, 22), "昨天")
    assert _metrics(demo_store, tracker, "E08", yesterday).conversations == 0


def _domain_actions() -> set[str]:
    names: set[str] = set()
    for path in (PROJECT_ROOT / "bot" / "domain").glob("*.yml"):
        names.update(yaml.safe_load(path.read_text(encoding="utf-8")).get("actions") or [])
    return names


def test_the_counted_actions_are_the_bots_own() -> None:
    actions = _domain_actions()
    assert actions >= SELF_SERVICE_ACTIONS
    assert actions >= FALLBACK_ACTIONS
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    core_fallback = {p.get("core_fallback_action_name") for p in config["policies"]} - {None}
    assert core_fallback <= FALLBACK_ACTIONS
