"""The FAQ knowledge base in the store: FAQs, revision, file import, unanswered queue, feedback."""

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock, faqs
from crm_store.errors import Conflict, CrmError, Invalid, NotFound
from crm_store.faqs import (
    create_faq,
    delete_faq,
    dismiss_unanswered,
    faq_revision,
    feedback_summary,
    get_faq,
    list_faqs,
    list_unanswered,
    load_faq_file,
    paraphrase_pairs,
    question_key,
    record_feedback,
    record_unanswered,
    resolve_unanswered,
    update_faq,
)
from crm_store.importer import faq_reason, import_csv_dir
from crm_store.models import AuditLog, Faq, FaqFeedback, FaqUnanswered

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ)
DEMO_FAQS = 24


@contextmanager
def refused(kind: type[CrmError], code: str, **data: Any) -> Iterator[None]:
    """Expect the block to raise `kind` with exactly this code and data."""
    with pytest.raises(kind) as caught:
        yield
    assert (caught.value.code, caught.value.data) == (code, data)


def _faq_count(store: sessionmaker[Session]) -> int:
    with store() as session:
        return session.scalar(select(func.count()).select_from(Faq)) or 0


def _revision(store: sessionmaker[Session]) -> str:
    with store() as session:
        return faq_revision(session)


def _record(store: sessionmaker[Session], question: str, at: datetime = NOW) -> int | None:
    with store.begin() as session:
        row = record_unanswered(session, question, asked_at=at)
        return row.id if row is not None else None


def _unanswered(store: sessionmaker[Session], unanswered_id: int) -> FaqUnanswered:
    with store() as session:
        return session.get_one(FaqUnanswered, unanswered_id)


# --- FAQs -----------------------------------------------------------------------------------------


def test_create_faq_takes_the_next_free_number_and_tidies_phrasings(
    demo_store: sessionmaker[Session],
) -> None:
    with demo_store.begin() as session:
        faq = create_faq(
            session,
            question="  可以开收据吗？ ",
            answer="可以。\r\n在订单详情中申请。",
            category="发票",
            alt_questions=["能开收据吗", "", "能开收据吗", "可以开收据吗？", "收据\t怎么开"],
            actor_id="staff",
        )
        assert faq.faq_id == "F025"

    with demo_store() as session:
        stored = get_faq(session, "F025")
        assert stored.question == "可以开收据吗？"
        assert stored.answer == "可以。\n在订单详情中申请。"
        assert stored.category == "发票"
        assert stored.alt_question_list() == ["能开收据吗", "收据 怎么开"]
        assert stored.updated_at.tzinfo is not None
        audit = session.scalars(select(AuditLog).where(AuditLog.entity == "faq")).one()
        assert (audit.action, audit.entity_id, audit.actor_role, audit.actor_id) == (
            "create_faq",
            "F025",
            "staff",
            "staff",
        )
        # The audit log names ids and fields, never the text.
        assert "收据" not in json.dumps(audit.detail, ensure_ascii=False)
    assert _faq_count(demo_store) == DEMO_FAQS + 1


def test_create_faq_under_a_taken_id_is_a_conflict(demo_store: sessionmaker[Session]) -> None:
    with refused(Conflict, "faq_id_taken", faq_id="F001"), demo_store.begin() as session:
        create_faq(session, faq_id="F001", question="新问题", answer="新答案")
    with demo_store() as session:
        assert get_faq(session, "F001").question == "怎么申请退货？"


def test_create_faq_under_a_chosen_id(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        assert create_faq(session, faq_id="VIP-1", question="问", answer="答").faq_id == "VIP-1"
        # Numbering ignores ids of other shapes and starts at F001.
        assert create_faq(session, question="问二", answer="答二").faq_id == "F001"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"question": "  "}, "question", "问题不能为空"),
        ({"question": "问" * 201}, "question", "问题不能超过 200 字"),
        ({"answer": "\n \n"}, "answer", "答案不能为空"),
        ({"answer": "答" * 2001}, "answer", "答案不能超过 2000 字"),
        ({"alt_questions": [f"问法{i}" for i in range(31)]}, "alt_questions", "备选问法最多 30 条"),
        ({"alt_questions": ["好的", "长" * 201]}, "alt_questions", "第 2 条备选问法不能超过 200 字"),
        ({"alt_questions": ["退货|换货"]}, "alt_questions", "第 1 条备选问法不能包含“|”"),
        ({"category": "类" * 33}, "category", "分类不能超过 32 字"),
        ({"faq_id": "F 1"}, "faq_id", "FAQ 编号格式不对"),
    ],
)
def test_invalid_faqs_are_refused_with_a_chinese_reason(
    demo_store: sessionmaker[Session], change: dict[str, Any], field: str, message: str
) -> None:
    values: dict[str, Any] = {"question": "怎么开收据？", "answer": "在订单详情中申请。", **change}
    with pytest.raises(Invalid) as caught, demo_store.begin() as session:
        create_faq(session, **values)
    assert caught.value.field == field
    # The reason staff read in an import report (the API's wording is checked in tests/api).
    assert re.search(message, faq_reason(caught.value.code, **caught.value.data))
    assert _faq_count(demo_store) == DEMO_FAQS


def test_thirty_alternative_phrasings_of_two_hundred_characters_are_fine(
    session_factory: sessionmaker[Session],
) -> None:
    alts = [f"{i:03d}" + "问" * 197 for i in range(30)]
    with session_factory.begin() as session:
        faq = create_faq(session, question="问" * 200, answer="答" * 2000, alt_questions=alts)
    assert len(faq.alt_question_list()) == 30


def test_update_changes_only_the_given_fields(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        before = get_faq(session, "F001")
    with demo_store.begin() as session:
        update_faq(session, "F001", answer="签收后7天内可申请退货。", actor_id="staff")

    with demo_store() as session:
        after = get_faq(session, "F001")
        assert after.answer == "签收后7天内可申请退货。"
        assert (after.question, after.category, after.alt_questions) == (
            before.question,
            before.category,
            before.alt_questions,
        )
        assert after.updated_at > before.updated_at
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "update_faq")).one()
        assert audit.detail == {"fields": ["answer"]}


def test_update_replaces_phrasings_and_clears_the_category(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        update_faq(session, "F001", category="", alt_questions=["退货怎么弄"])
    with demo_store() as session:
        faq = get_faq(session, "F001")
        assert faq.category is None
        assert faq.alt_question_list() == ["退货怎么弄"]


def test_an_update_that_changes_nothing_writes_nothing(demo_store: sessionmaker[Session]) -> None:
    revision = _revision(demo_store)
    with demo_store.begin() as session:
        update_faq(session, "F001", question=" 怎么申请退货？", category="售后")
    assert _revision(demo_store) == revision
    with demo_store() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 0


def test_unknown_faqs_are_not_found(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        for action in (
            lambda: get_faq(session, "F099"),
            lambda: update_faq(session, "F099", answer="答"),
            lambda: delete_faq(session, "F099"),
        ):
            with refused(NotFound, "faq_not_found", faq_id="F099"):
                action()


def test_delete_faq(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        delete_faq(session, "F003", actor_id="staff")
    with demo_store() as session:
        assert "F003" not in [faq.faq_id for faq in list_faqs(session)]
        assert session.scalars(select(AuditLog.action)).all() == ["delete_faq"]
    assert _faq_count(demo_store) == DEMO_FAQS - 1


def test_list_faqs_orders_by_number(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        for faq_id in ("F100", "F99", "F101", "F1"):
            create_faq(session, faq_id=faq_id, question=f"问题{faq_id}", answer="答")
    with session_factory() as session:
        assert [faq.faq_id for faq in list_faqs(session)] == ["F1", "F99", "F100", "F101"]


# --- the revision the index follows ---------------------------------------------------------------


def test_revision_changes_on_every_kind_of_write(demo_store: sessionmaker[Session]) -> None:
    seen = [_revision(demo_store)]
    with demo_store.begin() as session:
        create_faq(session, faq_id="F900", question="新问题", answer="新答案")
    seen.append(_revision(demo_store))
    with demo_store.begin() as session:
        update_faq(session, "F900", alt_questions=["另一种问法"])
    seen.append(_revision(demo_store))
    with demo_store.begin() as session:
        delete_faq(session, "F900")
    seen.append(_revision(demo_store))
    assert len(set(seen)) == len(seen)
    # Reading does not change it.
    assert _revision(demo_store) == seen[-1]


def test_revision_changes_when_a_delete_and_an_add_leave_count_and_newest_time_alike(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stopped clock: the added FAQ gets the same updated_at as the newest one before it.
    monkeypatch.setattr(clock, "now", lambda: NOW)
    with demo_store.begin() as session:
        create_faq(session, faq_id="F900", question="新问题", answer="新答案")
    before = _revision(demo_store)

    with demo_store.begin() as session:
        delete_faq(session, "F900")
    with demo_store.begin() as session:
        create_faq(session, faq_id="F901", question="另一个问题", answer="另一个答案")

    assert _faq_count(demo_store) == DEMO_FAQS + 1
    assert _revision(demo_store) != before


def test_revision_follows_the_csv_importer(session_factory: sessionmaker[Session], demo_dir: Path) -> None:
    empty = _revision(session_factory)
    assert import_csv_dir(session_factory, demo_dir).ok
    loaded = _revision(session_factory)
    assert loaded != empty

    assert import_csv_dir(session_factory, demo_dir).ok
    assert _revision(session_factory) == loaded


def test_an_uncommitted_change_does_not_show_in_the_revision(demo_store: sessionmaker[Session]) -> None:
    before = _revision(demo_store)
    with demo_store() as session:
        create_faq(session, question="新问题", answer="新答案")
        session.rollback()
    assert _revision(demo_store) == before


# --- importing a file -----------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_import_keeps_good_rows_and_reports_bad_ones(
    demo_store: sessionmaker[Session], tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "faqs.csv",
        "faq_id,category,question,answer,alt_questions\n"
        "F100,发票,可以开收据吗？,可以，在订单详情中申请。,能开收据吗|收据怎么开\n"
        "F101,发票,,没有问题的答案,\n"
        "F001,售后,怎么申请退货？,新的退货说明。,如何退货\n"
        "F 2,售后,问题,答案,\n"
        f"F102,售后,{'长' * 201},答案,\n"
        "F103,售后,只有四列,答案\n"
        "F104,物流,能寄到国外吗？,暂不支持寄往境外。,\n",
    )
    revision = _revision(demo_store)

    with demo_store.begin() as session:
        report = load_faq_file(session, path, actor_id="staff")

    assert [str(error) for error in report.errors] == [
        "faqs.csv:3: 缺少必填字段 question",
        "faqs.csv:5: faq_id 格式不对：只能含字母、数字、-、_、.，最长 32 位",
        "faqs.csv:6: 问题不能超过 200 字",
        "faqs.csv:7: 列数不对：应为 5 列，实际 4 列",
    ]
    assert (report.read, report.inserted, report.updated, report.unchanged) == (7, 2, 1, 0)
    assert not report.ok
    with demo_store() as session:
        assert get_faq(session, "F100").alt_question_list() == ["能开收据吗", "收据怎么开"]
        assert get_faq(session, "F104").answer == "暂不支持寄往境外。"
        assert get_faq(session, "F001").answer == "新的退货说明。"
        assert get_faq(session, "F001").alt_question_list() == ["如何退货"]
    assert _revision(demo_store) != revision


def test_importing_the_demo_csv_again_changes_nothing(
    demo_store: sessionmaker[Session], demo_dir: Path
) -> None:
    revision = _revision(demo_store)
    with demo_store.begin() as session:
        report = load_faq_file(session, demo_dir / "faqs.csv")
    assert report.ok
    assert (report.read, report.unchanged, report.inserted, report.updated) == (DEMO_FAQS, DEMO_FAQS, 0, 0)
    assert _revision(demo_store) == revision


def test_csv_with_a_missing_column_is_reported_and_nothing_written(
    demo_store: sessionmaker[Session], tmp_path: Path
) -> None:
    path = _write(tmp_path / "more.csv", "faq_id,question,answer\nF100,问,答\n")
    with demo_store.begin() as session:
        report = load_faq_file(session, path)
    assert [str(error) for error in report.errors] == ["more.csv:1: 表头缺少列：category, alt_questions"]
    assert _faq_count(demo_store) == DEMO_FAQS


def test_json_import_accepts_both_shapes_and_is_idempotent(
    demo_store: sessionmaker[Session], tmp_path: Path
) -> None:
    entries: list[Any] = [
        {"question": "可以开收据吗？", "answer": "可以。", "alt_questions": ["能开收据吗"]},
        {"faq_id": "F200", "category": "物流", "question": "能寄到国外吗？", "answer": "暂不支持。",
         "alt_questions": "国外能寄吗|支持海外吗"},
        "不是对象",
        {"question": "没有答案的问题"},
        {"question": "问", "answer": "答", "alt_questions": 3},
        {"faq_id": 7, "question": "问", "answer": "答"},
        {"question": "怎么申请退货？", "answer": "按 JSON 的新说明退货。"},
    ]  # fmt: skip
    wrapped = _write(tmp_path / "faqs.json", json.dumps({"faqs": entries}, ensure_ascii=False))

    with demo_store.begin() as session:
        report = load_faq_file(session, wrapped)

    assert [str(error) for error in report.errors] == [
        "faqs.json:#3: 应为一个对象（含 question 和 answer）",
        "faqs.json:#4: 缺少必填字段 answer",
        "faqs.json:#5: alt_questions 应为文本列表，或用“|”分隔的文本",
        "faqs.json:#6: faq_id 应为文本",
    ]
    # The entry without an id whose question is F001's updates F001 rather than adding a copy.
    assert (report.read, report.inserted, report.updated) == (7, 2, 1)
    with demo_store() as session:
        new = session.scalars(select(Faq).where(Faq.question == "可以开收据吗？")).one()
        # New ids follow the largest F number, here F200 from the same file.
        assert new.faq_id == "F201"
        assert get_faq(session, "F200").alt_question_list() == ["国外能寄吗", "支持海外吗"]
        assert get_faq(session, "F001").answer == "按 JSON 的新说明退货。"

    # A bare list of the same entries: nothing new, nothing changed.
    bare = _write(tmp_path / "again.json", json.dumps(entries, ensure_ascii=False))
    revision = _revision(demo_store)
    with demo_store.begin() as session:
        again = load_faq_file(session, bare)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert _faq_count(demo_store) == DEMO_FAQS + 2
    assert _revision(demo_store) == revision


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"question": "问", "answer": "答"},', "bad.json:1: 不是有效的 JSON（第 1 行第 35 列）"),
        ('{"items": []}', "bad.json:1: 应为 FAQ 列表，或含 faqs 列表的对象"),
    ],
)
def test_unreadable_json_is_reported(
    demo_store: sessionmaker[Session], tmp_path: Path, content: str, expected: str
) -> None:
    path = _write(tmp_path / "bad.json", content)
    with demo_store.begin() as session:
        report = load_faq_file(session, path)
    assert [str(error) for error in report.errors] == [expected]
    assert _faq_count(demo_store) == DEMO_FAQS


def test_only_csv_and_json_files_are_imported(demo_store: sessionmaker[Session], tmp_path: Path) -> None:
    path = _write(tmp_path / "faqs.xlsx", "")
    with refused(Invalid, "faq_file_type"), demo_store.begin() as session:
        load_faq_file(session, path)
    assert faq_reason("faq_file_type") == "只能导入 .csv 或 .json 文件"


# --- questions the assistant could not answer ------------------------------------------------------


def test_repeats_of_a_question_meet_on_one_row(demo_store: sessionmaker[Session]) -> None:
    first = _record(demo_store, "怎么退货？", NOW)
    assert _record(demo_store, " 怎么 退货", NOW + timedelta(minutes=5)) == first
    assert _record(demo_store, "ＦＯＯ怎么退货！", NOW) != first
    assert _record(demo_store, "怎么退货!!", NOW + timedelta(minutes=1)) == first

    assert first is not None
    row = _unanswered(demo_store, first)
    assert (row.question, row.count, row.status) == ("怎么退货？", 3, "open")
    assert row.first_asked_at == NOW
    assert row.last_asked_at == NOW + timedelta(minutes=5)


def test_personal_data_is_masked_before_it_is_stored(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "我的手机13800001111收不到验证码，邮箱 wang.li@example.com")
    assert row_id is not None
    row = _unanswered(demo_store, row_id)
    assert row.question == "我的手机138****1111收不到验证码，邮箱 ***@***"
    assert "00001111" not in row.normalized_key and "example" not in row.normalized_key
    # The same question from another phone is the same question.
    assert _record(demo_store, "我的手机 139 2222 3333 收不到验证码，邮箱 a@b.cn") == row_id
    assert _unanswered(demo_store, row_id).count == 2


def test_questions_about_other_orders_meet_but_keep_their_order_number(
    demo_store: sessionmaker[Session],
) -> None:
    row_id = _record(demo_store, "SO202611180001 可以开发票吗")
    assert _record(demo_store, "so202610020002可以开发票吗？") == row_id
    assert row_id is not None
    assert _unanswered(demo_store, row_id).question == "SO202611180001 可以开发票吗"


@pytest.mark.parametrize("text", ["", "   ", "？？！", "\t\n"])
def test_empty_questions_are_ignored(demo_store: sessionmaker[Session], text: str) -> None:
    assert _record(demo_store, text) is None
    with demo_store() as session:
        assert session.scalar(select(func.count()).select_from(FaqUnanswered)) == 0


def test_a_long_question_is_cut_to_500_characters(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "请问" + "很长" * 1000)
    assert row_id is not None
    assert len(_unanswered(demo_store, row_id).question) == 500


def test_question_key_folds_width_case_and_punctuation() -> None:
    assert question_key("怎么退货？") == question_key("怎么 退货") == "怎么退货"
    assert question_key("ＶＩＰ会员？") == question_key("vip 会员") == "vip会员"
    assert question_key("T09001 进度") == question_key("t09002进度") == "#进度"


def test_concurrent_asks_are_all_counted(demo_store: sessionmaker[Session]) -> None:
    def ask(_: int) -> int | None:
        return _record(demo_store, "你们周末发货吗")

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = set(pool.map(ask, range(12)))

    assert len(ids) == 1
    (row_id,) = ids
    assert row_id is not None
    assert _unanswered(demo_store, row_id).count == 12


def test_list_unanswered_most_asked_first(demo_store: sessionmaker[Session]) -> None:
    for _ in range(3):
        _record(demo_store, "周末发货吗", NOW)
    _record(demo_store, "能开收据吗", NOW)
    _record(demo_store, "能开收据吗", NOW)
    _record(demo_store, "支持货到付款吗", NOW + timedelta(hours=1))
    _record(demo_store, "有实体店吗", NOW)
    dismissed = _record(demo_store, "你好笨", NOW)
    assert dismissed is not None
    with demo_store.begin() as session:
        dismiss_unanswered(session, dismissed)

    with demo_store() as session:
        assert [row.question for row in list_unanswered(session)] == [
            "周末发货吗",
            "能开收据吗",
            "支持货到付款吗",
            "有实体店吗",
        ]
        assert [row.question for row in list_unanswered(session, limit=2)] == ["周末发货吗", "能开收据吗"]
        assert [row.question for row in list_unanswered(session, "dismissed")] == ["你好笨"]
        with refused(
            Invalid, "unanswered_status_unknown", field="status", allowed=("open", "resolved", "dismissed")
        ):
            list_unanswered(session, "closed")


def test_resolve_into_a_new_faq(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "你们周末发货吗？")
    assert row_id is not None
    revision = _revision(demo_store)

    with demo_store.begin() as session:
        faq = resolve_unanswered(session, row_id, answer="周末照常发货。", category="物流", actor_id="staff")

    assert faq.faq_id == "F025"
    with demo_store() as session:
        stored = get_faq(session, "F025")
        assert (stored.question, stored.answer, stored.category) == (
            "你们周末发货吗？",
            "周末照常发货。",
            "物流",
        )
        assert list_unanswered(session) == []
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["create_faq", "resolve_unanswered"]
    row = _unanswered(demo_store, row_id)
    assert (row.status, row.resolved_faq_id) == ("resolved", "F025")
    assert _revision(demo_store) != revision


def test_resolve_with_a_tidier_question_and_a_chosen_id(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "周末 发货不？？急")
    assert row_id is not None
    with demo_store.begin() as session:
        faq = resolve_unanswered(
            session, row_id, answer="周末照常发货。", faq_id="F300", question="周末发货吗？"
        )
    assert (faq.faq_id, faq.question) == ("F300", "周末发货吗？")


def test_resolve_into_an_existing_faq_adds_a_phrasing(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "东西不想要了能退吗")
    assert row_id is not None

    with demo_store.begin() as session:
        faq = resolve_unanswered(session, row_id, faq_id="F001")

    assert faq.faq_id == "F001"
    with demo_store() as session:
        phrasings = get_faq(session, "F001").alt_question_list()
    assert phrasings == ["如何退货", "退货流程是什么", "买的东西可以退吗", "东西不想要了能退吗"]
    assert _unanswered(demo_store, row_id).resolved_faq_id == "F001"


def test_resolve_with_a_phrasing_the_faq_has_changes_no_faq(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "如何退货？")
    assert row_id is not None
    revision = _revision(demo_store)
    with demo_store.begin() as session:
        resolve_unanswered(session, row_id, faq_id="F001", question="如何退货")
    assert _revision(demo_store) == revision
    assert _unanswered(demo_store, row_id).status == "resolved"


def test_resolve_refusals(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "周末发货吗")
    long_id = _record(demo_store, "问" * 300)
    assert row_id is not None and long_id is not None
    with demo_store.begin() as session:
        with refused(Invalid, "resolve_needs_answer_or_faq", field="answer"):
            resolve_unanswered(session, row_id)
        with refused(NotFound, "faq_not_found", faq_id="F099"):
            resolve_unanswered(session, row_id, faq_id="F099")
        with refused(Conflict, "faq_exists_answer_given", faq_id="F001"):
            resolve_unanswered(session, row_id, faq_id="F001", answer="答")
        with refused(Invalid, "category_only_for_new_faq", field="category"):
            resolve_unanswered(session, row_id, faq_id="F001", category="物流")
        with refused(Invalid, "faq_question_too_long", field="question", max_chars=200):
            resolve_unanswered(session, long_id, answer="答")
        with refused(NotFound, "unanswered_not_found", unanswered_id=9999):
            resolve_unanswered(session, 9999, answer="答")
    assert _faq_count(demo_store) == DEMO_FAQS

    with demo_store.begin() as session:
        resolve_unanswered(session, row_id, answer="周末照常发货。")
    resolved_by = _unanswered(demo_store, row_id).resolved_faq_id
    with (
        refused(Conflict, "unanswered_already_resolved", unanswered_id=row_id, faq_id=resolved_by),
        demo_store.begin() as session,
    ):
        resolve_unanswered(session, row_id, answer="再答一次")
    with (
        refused(Conflict, "unanswered_resolved_not_dismissable", unanswered_id=row_id),
        demo_store.begin() as session,
    ):
        dismiss_unanswered(session, row_id)


def test_a_resolved_question_asked_again_stays_resolved(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "周末发货吗")
    assert row_id is not None
    with demo_store.begin() as session:
        resolve_unanswered(session, row_id, answer="周末照常发货。")

    assert _record(demo_store, "周末发货吗？") == row_id

    row = _unanswered(demo_store, row_id)
    assert (row.status, row.count) == ("resolved", 2)
    with demo_store() as session:
        assert list_unanswered(session) == []


def test_dismissed_then_resolved(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "有实体店吗")
    assert row_id is not None
    with demo_store.begin() as session:
        assert dismiss_unanswered(session, row_id).status == "dismissed"
        assert dismiss_unanswered(session, row_id).status == "dismissed"
    with demo_store.begin() as session:
        resolve_unanswered(session, row_id, answer="暂无实体店，只在网上销售。")
    assert _unanswered(demo_store, row_id).status == "resolved"


def test_deleting_the_faq_unlinks_the_questions_it_resolved(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "周末发货吗")
    assert row_id is not None
    with demo_store.begin() as session:
        faq = resolve_unanswered(session, row_id, answer="周末照常发货。")
    with demo_store.begin() as session:
        delete_faq(session, faq.faq_id)
    row = _unanswered(demo_store, row_id)
    assert (row.status, row.resolved_faq_id) == ("resolved", None)


# --- feedback and paraphrases ---------------------------------------------------------------------


def test_feedback_summary(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        record_feedback(session, "F001", True, sender_id="web-a", query="怎么退货")
        record_feedback(session, "F001", True, sender_id="web-b")
        record_feedback(session, "F001", False, sender_id="web-c", query="退货电话13800001111")
        record_feedback(session, "F002", True, sender_id="web-a")
        # A second vote of the same conversation replaces its first.
        record_feedback(session, "F002", False, sender_id="web-a")
        record_unanswered(session, "周末发货吗")
        record_unanswered(session, "周末发货吗")
        record_unanswered(session, "有实体店吗")

    with demo_store() as session:
        summary = feedback_summary(session)
        votes = session.scalars(select(FaqFeedback).order_by(FaqFeedback.id)).all()

    assert [(s.faq_id, s.helpful, s.unhelpful) for s in summary.faqs] == [("F001", 2, 1), ("F002", 0, 1)]
    assert summary.faqs[0].question == "怎么申请退货？"
    assert summary.faqs[0].helpful_rate == pytest.approx(2 / 3)
    assert (summary.helpful, summary.unhelpful) == (2, 2)
    assert summary.helpful_rate == pytest.approx(0.5)
    assert (summary.unanswered_asks, summary.unanswered_open) == (3, 2)
    assert len(votes) == 4
    assert all(not vote.conversation_key.startswith("web-") for vote in votes)
    assert votes[2].query == "退货电话138****1111"


def test_feedback_summary_of_an_empty_store(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        summary = feedback_summary(session)
    assert (summary.faqs, summary.helpful_rate, summary.unanswered_asks, summary.unanswered_open) == (
        [],
        None,
        0,
        0,
    )


def test_feedback_outlives_its_faq_but_needs_one_to_start(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        record_feedback(session, "F003", False, sender_id="web-a")
        delete_faq(session, "F003")
    with demo_store() as session:
        (stats,) = feedback_summary(session).faqs
    assert (stats.faq_id, stats.question, stats.unhelpful) == ("F003", None, 1)
    with refused(NotFound, "faq_not_found", faq_id="F003"), demo_store.begin() as session:
        record_feedback(session, "F003", True, sender_id="web-b")


def test_paraphrase_pairs(demo_store: sessionmaker[Session]) -> None:
    existing = _record(demo_store, "退货要运费吗")
    new = _record(demo_store, "周末发货吗")
    assert existing is not None and new is not None
    with demo_store.begin() as session:
        resolve_unanswered(session, existing, faq_id="F001")
        resolve_unanswered(session, new, answer="周末照常发货。")

    with demo_store() as session:
        pairs = paraphrase_pairs(session)
        alts = sum(len(faq.alt_question_list()) for faq in list_faqs(session))

    assert pairs[:4] == [
        ("如何退货", "F001"),
        ("退货流程是什么", "F001"),
        ("买的东西可以退吗", "F001"),
        ("退货要运费吗", "F001"),
    ]
    assert ("怎么换货", "F002") in pairs
    # The new FAQ's question is the resolved text itself: no pair teaches that a text means itself.
    assert all(faq_id != "F025" for _, faq_id in pairs)
    assert len(pairs) == alts == len(set(pairs))


def test_a_question_resolved_by_a_deleted_faq_stays_resolved(demo_store: sessionmaker[Session]) -> None:
    row_id = _record(demo_store, "周末发货吗")
    assert row_id is not None
    with demo_store.begin() as session:
        faq = resolve_unanswered(session, row_id, answer="周末照常发货。")
        delete_faq(session, faq.faq_id)
    with (
        refused(Conflict, "unanswered_resolved_by_deleted_faq", unanswered_id=row_id),
        demo_store.begin() as session,
    ):
        resolve_unanswered(session, row_id, answer="再答一次")


def test_the_package_exports_exactly_what_it_lists() -> None:
    assert {name for name in vars(faqs) if not name.startswith("_")} == set(faqs.__all__)
