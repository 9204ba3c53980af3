"""A visit note in one sentence → customer, kind, dates, summary and next step, on the demo company."""

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, actor_for
from crm_store.db import create_engine_for, make_session_factory
from crm_store.importer import import_csv_dir
from crm_store.models import Customer
from crm_store.settings import DEMO_DIR
from knowledge.visits import VisitExtraction, parse_visit, parser_for, revise

MONDAY = date(2026, 11, 23)


@pytest.fixture(scope="module")
def sessions(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """One demo store for the module: extraction only reads it (the cache test renames in its own)."""
    path = tmp_path_factory.mktemp("visits") / "crm.db"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine_for(f"sqlite:///{path}")
    factory = make_session_factory(engine)
    assert import_csv_dir(factory, DEMO_DIR).ok
    yield factory
    engine.dispose()


def _parse(sessions: sessionmaker[Session], employee: str, text: str) -> VisitExtraction:
    with sessions() as session:
        return parse_visit(session, actor_for(session, employee), text, today=MONDAY)


def test_the_issue_visit_example(sessions: sessionmaker[Session]) -> None:
    text = "今天下午拜访了华峰科技的王芳，聊了二期报价，她比较感兴趣，下周三把报价单发过去"
    result = _parse(sessions, "E03", text).to_json()
    assert result == {
        "customer_id": "C0003",
        "candidates": [],
        "kind": "拜访",
        "occurred_at": "2026-11-23",
        "summary": "今天下午拜访了华峰科技的王芳，聊了二期报价，她比较感兴趣",
        "next_step": "把报价单发过去",
        "next_date": "2026-12-02",
    }


def test_the_issue_call_example(sessions: sessionmaker[Session]) -> None:
    result = _parse(sessions, "E03", "刚和华峰科技的王芳通了电话，她对二期报价挺感兴趣，下周二再联系她")
    assert (result.customer_id, result.kind, result.occurred_at, result.next_date) == (
        "C0003",
        "电话",
        MONDAY,
        date(2026, 12, 1),
    )
    assert result.next_step == "联系王芳"  # the pronoun named, for the task's title
    assert "下周二" not in result.summary


@pytest.mark.parametrize(
    ("employee", "text", "customer", "kind", "occurred", "next_date"),
    [
        ("E02", "周四拜访了孔总，下下周一再跟进", "C0004", "拜访", "2026-11-19", "2026-12-07"),
        ("E02", "昨天下午去了趟远航物流，月底前给他出方案", "C0004", "拜访", "2026-11-22", "2026-11-30"),
        ("E03", "和c0013打了电话", "C0013", "电话", "2026-11-23", None),
        ("E03", "跟172-0567-3406通了个电话 12/10再约", "C0003", "电话", "2026-11-23", "2026-12-10"),
        (
            "E03",
            "微信跟王方聊了下，下个月5号前定",
            "C0003",
            "微信",
            "2026-11-23",
            "2026-12-05",
        ),  # 王方: a typo
        ("E05", "东升机械邱总今天开了个线上会议，3天后出报价", "C0040", "会议", "2026-11-23", "2026-11-26"),
        ("E02", "下周一再给邓艳打电话，今天上午拜访过她了", "C0055", "拜访", "2026-11-23", "2026-11-30"),
        ("E03", "meeting with 王芳 today, follow up next week", "C0003", "会议", "2026-11-23", "2026-11-30"),
    ],
)
def test_varied_sentences(
    sessions: sessionmaker[Session],
    employee: str,
    text: str,
    customer: str,
    kind: str,
    occurred: str,
    next_date: str | None,
) -> None:
    result = _parse(sessions, employee, text).to_json()
    assert (result["customer_id"], result["kind"], result["occurred_at"], result["next_date"]) == (
        customer,
        kind,
        occurred,
        next_date,
    )


def test_two_customers_of_the_scope_are_candidates(sessions: sessionmaker[Session]) -> None:
    result = _parse(sessions, "E03", "上午见了王总，聊了续费的事")
    assert result.customer_id is None
    assert [c.to_json() for c in result.candidates] == [
        {"customer_id": "C0003", "name": "王芳", "company": "华峰科技有限公司"},
        {"customer_id": "C0043", "name": "王军", "company": None},
    ]
    # The company said with the title settles it.
    assert _parse(sessions, "E03", "上午见了华峰的王总").customer_id == "C0003"


@pytest.mark.parametrize(
    ("employee", "text"),
    [
        ("E02", "今天拜访了华峰科技的王芳"),  # 王芳 is E03's
        ("E02", "和C0003通了电话"),  # an id outside the scope
        ("E02", "给17205673406打了电话"),  # her phone
        ("E01", "和孔思远通了电话"),  # 华中, not the manager's 华东
        ("E03", "拜访了孔思远"),
    ],
)
def test_a_customer_outside_the_scope_is_never_matched(
    sessions: sessionmaker[Session], employee: str, text: str
) -> None:
    result = _parse(sessions, employee, text)
    assert result.customer_id is None and result.candidates == ()


def test_a_customer_actor_matches_nobody(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        result = parse_visit(session, CUSTOMER, "今天拜访了华峰科技的王芳", today=MONDAY)
    assert result.customer_id is None and result.candidates == ()


def test_no_next_step_means_nulls(sessions: sessionmaker[Session]) -> None:
    result = _parse(sessions, "E02", "张伟在微信上问了耳机保修，已经回复，不用跟进")
    assert (result.kind, result.next_step, result.next_date) == ("微信", None, None)


def test_revise_moves_the_next_date_within_its_week(sessions: sessionmaker[Session]) -> None:
    draft = _parse(sessions, "E03", "今天拜访了王芳，下周三把报价单发过去")
    fixed = revise(draft, "不是周三，是周四", today=MONDAY)
    assert fixed.next_date == date(2026, 12, 3)  # 下周四, not this Thursday
    assert fixed.occurred_at == MONDAY and fixed.customer_id == "C0003"


def test_revise_without_next_date_moves_the_visit(sessions: sessionmaker[Session]) -> None:
    draft = _parse(sessions, "E03", "周三拜访了王芳")
    assert draft.occurred_at == date(2026, 11, 18)
    assert revise(draft, "不是周三，是周四", today=MONDAY).occurred_at == date(2026, 11, 19)


def test_revise_kind_step_and_customer(sessions: sessionmaker[Session]) -> None:
    draft = _parse(sessions, "E03", "上午见了王总，下周二再联系")
    assert draft.customer_id is None
    chosen = revise(draft, "客户是王军", today=MONDAY)
    assert (chosen.customer_id, chosen.candidates) == ("C0043", ())
    assert revise(chosen, "改成电话", today=MONDAY).kind == "电话"
    step = revise(chosen, "下一步改成发合同", today=MONDAY)
    assert (step.next_step, step.next_date) == ("发合同", date(2026, 12, 1))
    with sessions() as session:
        parser = parser_for(session, actor_for(session, "E03"))
    assert parser.revise(draft, "客户是C0008", today=MONDAY).customer_id == "C0008"
    # Outside the scope: the draft stays as it was.
    assert parser.revise(draft, "客户是孔思远", today=MONDAY).customer_id is None


def test_the_directory_follows_a_renamed_customer(
    sessions: sessionmaker[Session],
) -> None:
    assert _parse(sessions, "E04", "今天拜访了叶芳").customer_id == "C0006"
    with sessions.begin() as session:
        session.execute(update(Customer).where(Customer.customer_id == "C0006").values(name="叶晓雯"))
    assert _parse(sessions, "E04", "今天拜访了叶晓雯").customer_id == "C0006"
    with sessions.begin() as session:
        session.execute(update(Customer).where(Customer.customer_id == "C0006").values(name="叶芳"))


def test_json_round_trip(sessions: sessionmaker[Session]) -> None:
    draft = _parse(sessions, "E03", "上午见了王总，下周二再联系")
    assert VisitExtraction.from_json(draft.to_json()) == draft
