"""Hand-off to a person: cases, transcript, staff replies, closing, rating, service hours, the relay."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.errors import Conflict, CrmError, Invalid, NotFound
from crm_store.handoff import (
    TRANSCRIPT_MAX_ENTRIES,
    Delivery,
    RelayTurn,
    add_customer_message,
    add_staff_reply,
    close_handoff,
    get_handoff,
    list_open_handoffs,
    mark_delivered,
    open_case_for,
    open_handoff,
    pending_replies,
    rate_handoff,
    relay_turn,
    unrated_closed_case,
)
from crm_store.models import AuditLog, HandoffCase, HandoffMessage
from crm_store.service_hours import SERVICE_HOURS, next_service_time

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ)
TRANSCRIPT = [
    {"who": "customer", "text": "我要投诉", "at": "2026-11-23T09:58:00+08:00"},
    {"who": "bot", "text": "请描述一下遇到的问题", "at": "2026-11-23T09:58:01+08:00"},
    {"who": "customer", "text": "转人工"},
]


def _at(hour: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=clock.TZ)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (_at(9), None),
        (_at(10, 30), None),
        (_at(20, 59), None),
        (_at(8, 59), _at(9)),
        (_at(0, 5), _at(9)),
        (_at(21), _at(9, day=24)),
        (_at(23, 30), _at(9, day=24)),
        # 13:30 UTC is 21:30 in Beijing; 02:00 UTC is 10:00.
        (datetime(2026, 11, 23, 13, 30, tzinfo=UTC), _at(9, day=24)),
        (datetime(2026, 11, 23, 2, 0, tzinfo=UTC), None),
    ],
)
def test_next_service_time(now: datetime, expected: datetime | None) -> None:
    assert SERVICE_HOURS[0].hour == 9 and SERVICE_HOURS[1].hour == 21
    result = next_service_time(now)
    assert result == expected
    if result is not None:
        assert result.tzinfo == clock.TZ


def test_next_service_time_refuses_a_naive_time() -> None:
    # A programming error of the caller, not a refusal of the CRM's rules.
    with pytest.raises(TypeError):
        next_service_time(datetime(2026, 11, 23, 10, 0))


def _open(
    store: sessionmaker[Session], conversation: str = "web-1", now: datetime = NOW, **links: str
) -> int:
    with store.begin() as session:
        opening = open_handoff(
            session, conversation=conversation, reason="客户要求", transcript=TRANSCRIPT, now=now, **links
        )
        return opening.case.id


def test_open_handoff_records_case_and_transcript(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        opening = open_handoff(
            session,
            conversation="web-1",
            reason="高优先级投诉",
            customer_id="C0001",
            ticket_id="T09001",
            transcript=TRANSCRIPT,
            now=NOW,
        )
    assert opening.created and opening.answer_from is None
    case = opening.case
    assert (case.sender_id, case.customer_id, case.ticket_id, case.reason, case.status) == (
        "web-1",
        "C0001",
        "T09001",
        "高优先级投诉",
        "open",
    )
    assert case.is_open and case.opened_at == NOW and case.closed_at is None
    assert [(e.who, e.text) for e in case.transcript] == [(t["who"], t["text"]) for t in TRANSCRIPT]
    assert case.transcript[0].at == _at(9, 58)
    assert case.transcript[2].at == NOW  # no time given: the opening time
    with demo_store() as session:
        assert open_case_for(session, conversation="web-1") == case
        assert open_case_for(session, conversation="web-2") is None


def test_outside_service_hours_the_customer_learns_when(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        opening = open_handoff(session, conversation="web-1", reason="客户要求", now=_at(22, 15))
    assert opening.answer_from == _at(9, day=24)


def test_open_handoff_is_idempotent_per_conversation(demo_store: sessionmaker[Session]) -> None:
    first = _open(demo_store)
    with demo_store.begin() as session:
        again = open_handoff(
            session,
            conversation="web-1",
            reason="连续未理解",
            customer_id="C0001",
            transcript=[{"who": "customer", "text": "人呢"}],
            now=NOW + timedelta(minutes=1),
        )
    assert (again.created, again.case.id, again.case.reason) == (False, first, "客户要求")
    # A link learnt since is filled in; the transcript is not duplicated.
    assert again.case.customer_id == "C0001"
    assert len(again.case.transcript) == len(TRANSCRIPT)
    with demo_store() as session:
        assert session.scalar(select(func.count()).select_from(HandoffCase)) == 1
        assert len(list_open_handoffs(session)) == 1


def test_the_database_allows_one_open_case_per_conversation(demo_store: sessionmaker[Session]) -> None:
    _open(demo_store)
    with pytest.raises(IntegrityError), demo_store.begin() as session:
        session.add(
            HandoffCase(sender_id="web-1", reason="客户要求", status="open", transcript=[], opened_at=NOW)
        )


def test_a_closed_case_lets_a_new_one_open(demo_store: sessionmaker[Session]) -> None:
    first = _open(demo_store)
    with demo_store.begin() as session:
        closed = close_handoff(session, case_id=first, staff_id="E06", now=NOW + timedelta(minutes=5))
    assert (closed.status, closed.closed_at, closed.is_open) == ("closed", NOW + timedelta(minutes=5), False)
    with demo_store() as session:
        assert open_case_for(session, conversation="web-1") is None
    second = _open(demo_store, now=NOW + timedelta(hours=1))
    assert second != first


def test_list_open_handoffs_longest_waiting_first(demo_store: sessionmaker[Session]) -> None:
    late = _open(demo_store, "web-late", now=NOW + timedelta(minutes=10))
    early = _open(demo_store, "web-early", now=NOW)
    done = _open(demo_store, "web-done", now=NOW - timedelta(minutes=10))
    with demo_store.begin() as session:
        close_handoff(session, case_id=done, now=NOW)
    with demo_store() as session:
        assert [c.id for c in list_open_handoffs(session)] == [early, late]


def test_staff_reply_reaches_the_conversation_once(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    other = _open(demo_store, "web-2")
    with demo_store.begin() as session:
        reply = add_staff_reply(
            session, case_id=case_id, text=" 您好，我是客服小周 ", staff_id="E06", now=NOW
        )
        add_staff_reply(session, case_id=other, text="另一位客户", staff_id="E06", now=NOW)
    assert (reply.case_id, reply.text, reply.delivered_at) == (case_id, "您好，我是客服小周", None)
    with demo_store() as session:
        pending = pending_replies(session, conversation="web-1")
        assert [p.text for p in pending] == ["您好，我是客服小周"]
        case = get_handoff(session, case_id=case_id)
        assert case is not None and (case.transcript[-1].who, case.transcript[-1].text) == (
            "staff",
            "您好，我是客服小周",
        )
    with demo_store.begin() as session:
        assert mark_delivered(session, reply_ids=[reply.id], now=NOW + timedelta(seconds=5)) == 1
    with demo_store.begin() as session:
        assert mark_delivered(session, reply_ids=[reply.id], now=NOW + timedelta(seconds=9)) == 0
        assert mark_delivered(session, reply_ids=[], now=NOW) == 0
    with demo_store() as session:
        assert pending_replies(session, conversation="web-1") == []
        assert len(pending_replies(session, conversation="web-2")) == 1


def test_a_last_reply_before_closing_is_still_delivered(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        add_staff_reply(session, case_id=case_id, text="已为您处理好了，再见", staff_id="E06", now=NOW)
        close_handoff(session, case_id=case_id, staff_id="E06", now=NOW)
    with demo_store() as session:
        assert [p.text for p in pending_replies(session, conversation="web-1")] == ["已为您处理好了，再见"]


def test_customer_messages_during_handoff_join_the_transcript(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        add_customer_message(session, case_id=case_id, text="还在吗？", now=NOW + timedelta(minutes=2))
    with demo_store() as session:
        case = get_handoff(session, case_id=case_id)
    assert case is not None
    assert (case.transcript[-1].who, case.transcript[-1].text) == ("customer", "还在吗？")
    assert case.transcript[-1].at == NOW + timedelta(minutes=2)


def test_the_transcript_keeps_the_latest_entries(demo_store: sessionmaker[Session]) -> None:
    long = [{"who": "customer", "text": f"第{n}句"} for n in range(TRANSCRIPT_MAX_ENTRIES + 5)]
    with demo_store.begin() as session:
        opening = open_handoff(session, conversation="web-1", reason="连续未理解", transcript=long, now=NOW)
        add_customer_message(session, case_id=opening.case.id, text="最后一句", now=NOW)
    with demo_store() as session:
        case = get_handoff(session, case_id=opening.case.id)
    assert case is not None and len(case.transcript) == TRANSCRIPT_MAX_ENTRIES
    assert case.transcript[0].text == "第6句" and case.transcript[-1].text == "最后一句"


def test_a_closed_case_refuses_replies_messages_and_a_second_close(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        close_handoff(session, case_id=case_id, now=NOW)
    calls: list[Callable[[Session], object]] = [
        lambda session: add_staff_reply(session, case_id=case_id, text="您好", staff_id="E06", now=NOW),
        lambda session: add_customer_message(session, case_id=case_id, text="您好", now=NOW),
        lambda session: close_handoff(session, case_id=case_id, now=NOW + timedelta(hours=1)),
    ]
    for call in calls:
        with pytest.raises(Conflict) as refused, demo_store.begin() as session:
            call(session)
        assert (refused.value.code, refused.value.data) == ("handoff_closed", {"case_id": case_id})
    with demo_store() as session:
        assert get_handoff(session, case_id=case_id).closed_at == NOW  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("case_offset", "text", "staff_id", "error", "code"),
    [
        (0, "   ", "E06", Invalid, "reply_empty"),
        (0, "长" * 2001, "E06", Invalid, "reply_too_long"),
        (0, "您好", "E99", NotFound, "employee_not_found"),
        (1000, "您好", "E06", NotFound, "handoff_not_found"),
    ],
)
def test_bad_replies_are_refused(
    demo_store: sessionmaker[Session],
    case_offset: int,
    text: str,
    staff_id: str,
    error: type[CrmError],
    code: str,
) -> None:
    case_id = _open(demo_store)
    with pytest.raises(error) as refused, demo_store.begin() as session:
        add_staff_reply(session, case_id=case_id + case_offset, text=text, staff_id=staff_id, now=NOW)
    assert refused.value.code == code
    with demo_store() as session:
        assert pending_replies(session, conversation="web-1") == []


@pytest.mark.parametrize(
    ("fields", "error", "code"),
    [
        ({"reason": "想聊天"}, Invalid, "handoff_reason_unknown"),
        ({"transcript": [{"who": "robot", "text": "hi"}]}, Invalid, "transcript_speaker_unknown"),
        ({"customer_id": "C0999"}, NotFound, "customer_not_found"),
        ({"ticket_id": "T99999"}, NotFound, "ticket_not_found"),
    ],
)
def test_bad_handoffs_are_refused(
    demo_store: sessionmaker[Session], fields: dict[str, object], error: type[CrmError], code: str
) -> None:
    arguments: dict[str, object] = {"conversation": "web-1", "reason": "客户要求", "now": NOW} | fields
    with pytest.raises(error) as refused, demo_store.begin() as session:
        open_handoff(session, **arguments)  # type: ignore[arg-type]
    assert refused.value.code == code
    with demo_store() as session:
        assert session.scalar(select(func.count()).select_from(HandoffCase)) == 0


def test_rate_handoff(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        close_handoff(session, case_id=case_id, now=NOW)
        rate_handoff(session, case_id=case_id, rating=5, now=NOW)
    with demo_store() as session:
        case = get_handoff(session, case_id=case_id)
        assert case is not None and case.rating == 5
    with pytest.raises(Invalid), demo_store.begin() as session:
        rate_handoff(session, case_id=case_id, rating=0, now=NOW)
    with pytest.raises(NotFound), demo_store.begin() as session:
        rate_handoff(session, case_id=case_id + 1000, rating=3, now=NOW)


def test_open_and_close_are_audited_without_the_sender_id(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store, "web-private-sender", customer_id="C0001")
    with demo_store.begin() as session:
        close_handoff(session, case_id=case_id, staff_id="E06", now=NOW)
    with demo_store() as session:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [(r.action, r.entity, r.entity_id, r.actor_role) for r in rows] == [
        ("open_handoff", "handoff_case", str(case_id), "customer"),
        ("close_handoff", "handoff_case", str(case_id), "staff"),
    ]
    assert not any("private" in f"{r.actor_id}{r.detail}" for r in rows)


def test_the_latest_closed_unrated_case_is_the_one_to_rate(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        assert unrated_closed_case(session, conversation="web-rate") is None
        first = open_handoff(session, conversation="web-rate", reason="客户要求").case.id
        assert unrated_closed_case(session, conversation="web-rate") is None  # still open
        close_handoff(session, case_id=first)
        assert unrated_closed_case(session, conversation="web-rate") == first
        rate_handoff(session, case_id=first, rating=5)
        assert unrated_closed_case(session, conversation="web-rate") is None
        assert unrated_closed_case(session, conversation="someone-else") is None


# --- closing words ------------------------------------------------------------------------------

CLOSING = "本次服务已结束"


def test_closing_queues_the_closing_words_as_the_last_message(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        add_staff_reply(session, case_id=case_id, text="已为您处理好了", staff_id="E06", now=NOW)
        view = close_handoff(session, case_id=case_id, staff_id="E06", closing_text=CLOSING, now=NOW)
    assert (view.status, view.transcript[-1].who, view.transcript[-1].text) == ("closed", "staff", CLOSING)
    with demo_store() as session:
        pending = pending_replies(session, conversation="web-1")
        sent = session.execute(
            select(HandoffMessage.kind, HandoffMessage.staff_id).order_by(HandoffMessage.id)
        ).all()
    assert [(p.text, p.kind) for p in pending] == [("已为您处理好了", "reply"), (CLOSING, "closing")]
    assert [tuple(row) for row in sent] == [("reply", "E06"), ("closing", "E06")]


# --- the relay: the customer's side while a person has the conversation ------------------------


def test_a_paused_conversation_is_recorded_and_held(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)

    turn = relay_turn(demo_store, conversation="web-1", text="人呢？")

    assert turn == RelayTurn(paused=True) and turn.holding
    with demo_store() as session:
        case = get_handoff(session, case_id=case_id)
    assert case is not None and (case.transcript[-1].who, case.transcript[-1].text) == ("customer", "人呢？")


def test_a_conversation_without_a_case_is_left_to_the_bot(demo_store: sessionmaker[Session]) -> None:
    _open(demo_store)

    assert relay_turn(demo_store, conversation="web-other", text="你好") == RelayTurn(paused=False)
    assert relay_turn(demo_store, conversation="web-1", text=None) == RelayTurn(paused=False)


def test_staff_messages_are_handed_over_once_with_the_rating_asked_on_closing(
    demo_store: sessionmaker[Session],
) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        add_staff_reply(session, case_id=case_id, text="您好", staff_id=None, now=NOW)
    assert relay_turn(demo_store, conversation="web-1", text="在吗") == RelayTurn(
        paused=True, deliveries=(Delivery(case_id=case_id, text="您好", kind="reply", asks_rating=False),)
    )
    with demo_store.begin() as session:
        close_handoff(session, case_id=case_id, staff_id="E06", closing_text=CLOSING, now=NOW)

    # A poll after the close; then the case is no longer open, so a message goes to the bot.
    polled = relay_turn(demo_store, conversation="web-1", text=None)
    after = relay_turn(demo_store, conversation="web-1", text="谢谢")

    assert polled == RelayTurn(
        paused=False, deliveries=(Delivery(case_id=case_id, text=CLOSING, kind="closing", asks_rating=True),)
    )
    assert after == RelayTurn(paused=False)


def test_the_closing_words_of_a_rated_case_ask_nothing(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        close_handoff(session, case_id=case_id, closing_text=CLOSING, now=NOW)
        rate_handoff(session, case_id=case_id, rating=4, now=NOW)

    turn = relay_turn(demo_store, conversation="web-1", text=None)

    assert [(d.kind, d.asks_rating) for d in turn.deliveries] == [("closing", False)]


def test_a_staff_reply_reaches_one_of_many_concurrent_polls(demo_store: sessionmaker[Session]) -> None:
    case_id = _open(demo_store)
    with demo_store.begin() as session:
        add_staff_reply(session, case_id=case_id, text="只说一次", staff_id=None, now=NOW)

    with ThreadPoolExecutor(max_workers=4) as pool:
        turns = list(pool.map(lambda _: relay_turn(demo_store, conversation="web-1", text=None), range(8)))

    assert sum(len(turn.deliveries) for turn in turns) == 1


# --- one clock ----------------------------------------------------------------------------------


def test_a_case_opened_on_a_pinned_day_has_its_transcript_on_that_day(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    # What the bot sends: real instants of the chat (Rasa's event times), a minute apart.
    real_now = datetime.now(UTC)
    transcript = [
        {"who": "customer", "text": "转人工", "at": (real_now - timedelta(minutes=1)).isoformat()},
        {"who": "bot", "text": "好的", "at": real_now.isoformat()},
    ]
    with demo_store.begin() as session:
        opening = open_handoff(session, conversation="web-pinned", reason="客户要求", transcript=transcript)
    with demo_store.begin() as session:
        add_customer_message(session, case_id=opening.case.id, text="还在吗")

    with demo_store() as session:
        case = get_handoff(session, case_id=opening.case.id)
    assert case is not None and case.opened_at.date() == date(2026, 11, 23)
    assert [entry.at.date() for entry in case.transcript] == [date(2026, 11, 23)] * 3
    first, second, third = (entry.at for entry in case.transcript)
    assert second - first == timedelta(minutes=1)
    assert first < second <= case.opened_at + timedelta(seconds=5) and second <= third


def test_crm_time_places_a_real_instant_on_the_pinned_calendar(monkeypatch: pytest.MonkeyPatch) -> None:
    real = datetime.now(clock.TZ)
    monkeypatch.delenv("CRM_TODAY", raising=False)
    assert clock.crm_time(real) == real
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    moved = clock.crm_time(real.astimezone(UTC))
    assert moved.date() == date(2026, 11, 23) and moved.tzinfo == clock.TZ
    assert moved.time() == real.time()
    with pytest.raises(TypeError):
        clock.crm_time(datetime(2026, 11, 23, 10, 0))
