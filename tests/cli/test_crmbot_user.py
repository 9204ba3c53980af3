"""`crmbot user …` and the demo passwords, as a person runs them: exit codes, output, sign-in after."""

import io
import logging
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import Actor
from crm_store.accounts import DEMO_PASSWORD, authenticate
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import NotFound, Unauthenticated
from crm_store.models import AuditLog
from crm_store.wecom_links import wecom_actor
from crmbot.cli import main
from crmbot.preparation import prepare_store


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    return url


def sign_in(url: str, employee_id: str, password: str) -> Actor:
    engine = create_engine_for(url)
    sessions: sessionmaker[Session] = make_session_factory(engine)
    try:
        with sessions() as session:
            try:
                return authenticate(session, employee_id, password)
            finally:
                session.commit()  # failures count, as in the API
    finally:
        engine.dispose()


def table_rows(out: str) -> dict[str, list[str]]:
    """The rows of the `user list` table by employee id, each as its cells."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if "│ E" in line]
    return {row[0]: row for row in rows}


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_set_password_from_stdin_then_sign_in(
    database_url: str, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["import", str(demo_dir), "--no-progress"]) == 0
    stdin(monkeypatch, "liu-yang-2026\n")

    assert main(["user", "set-password", "E03", "--password-stdin"]) == 0

    actor = sign_in(database_url, "E03", "liu-yang-2026")
    assert (actor.employee_id, actor.role, actor.region) == ("E03", "sales", "华北")
    with pytest.raises(Unauthenticated):
        sign_in(database_url, "E03", "liu-yang-2026\n")


def test_set_password_by_prompt_asks_twice(
    database_url: str, demo_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["import", str(demo_dir), "--no-progress"]) == 0
    answers = iter(["first-answer", "second-answer", "same-answer", "same-answer"])
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))

    assert main(["user", "set-password", "E06"]) == 1
    assert "两次输入的密码不一致" in caplog.text
    assert main(["user", "set-password", "E06"]) == 0
    assert sign_in(database_url, "E06", "same-answer").role == "service"


@pytest.mark.parametrize(
    ("employee_id", "password", "words"),
    [("E77", "long-enough-1", "找不到员工 E77"), ("E03", "short", "密码至少需要 8 位")],
)
def test_set_password_refusals_say_why(
    database_url: str,
    demo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    employee_id: str,
    password: str,
    words: str,
) -> None:
    assert main(["import", str(demo_dir), "--no-progress"]) == 0
    stdin(monkeypatch, password + "\n")

    assert main(["user", "set-password", employee_id, "--password-stdin"]) == 1
    assert words in caplog.text


def test_a_plain_import_sets_no_password_and_the_demo_flag_does(
    database_url: str, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(demo_dir), "--no-progress"]) == 0
    with pytest.raises(Unauthenticated):
        sign_in(database_url, "E08", DEMO_PASSWORD)

    assert main(["import", str(demo_dir), "--no-progress", "--demo-passwords"]) == 0

    assert sign_in(database_url, "E08", DEMO_PASSWORD).role == "admin"
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows["E01"] == ["E01", "陈思远", "经理", "华东", "是", "否", "否"]
    assert rows["E08"] == ["E08", "郑霞", "管理员", "华东", "是", "否", "否"]
    assert all(row[4] == "是" for row in rows.values())


def test_the_demo_seeding_of_an_empty_store_gives_demo_passwords(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        prepare_store(engine, load_demo=True)
    finally:
        engine.dispose()

    assert sign_in(database_url, "E03", DEMO_PASSWORD).employee_id == "E03"


def test_user_list_shows_who_has_no_password_and_who_is_locked(
    database_url: str, demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(demo_dir), "--no-progress"]) == 0
    stdin(monkeypatch, "good-password\n")
    assert main(["user", "set-password", "E02", "--password-stdin"]) == 0
    for _ in range(5):
        with pytest.raises(Exception):  # noqa: B017,PT011 - Unauthenticated, then Locked
            sign_in(database_url, "E02", "wrong-password")
    capsys.readouterr()

    assert main(["user", "list"]) == 0

    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == {f"E0{n}" for n in range(1, 9)}
    assert rows["E02"][4] == "是" and rows["E02"][5].startswith("锁定至 ")
    assert rows["E03"][4:] == ["否", "否", "否"]


def wecom_member(url: str, userid: str) -> Actor:
    engine = create_engine_for(url)
    try:
        with make_session_factory(engine)() as session:
            return wecom_actor(session, userid)
    finally:
        engine.dispose()


def test_link_wecom_makes_the_member_that_employee_and_unlink_undoes_it(
    database_url: str,
    demo_dir: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["import", str(demo_dir), "--no-progress", "--demo-passwords"]) == 0
    caplog.set_level(logging.INFO, logger="crmbot")

    assert main(["user", "link-wecom", "E03", "LiuYang"]) == 0
    assert "已将企业微信账号关联到员工 E03" in caplog.text
    actor = wecom_member(database_url, "LiuYang")
    assert (actor.employee_id, actor.role, actor.region) == ("E03", "sales", "华北")
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert (rows["E03"][6], rows["E02"][6]) == ("LiuYang", "否")

    # One member is one employee: linking them to another is refused, naming the first.
    assert main(["user", "link-wecom", "E02", "LiuYang"]) == 1
    assert "已关联员工 E03" in caplog.text
    assert main(["user", "link-wecom", "E77", "Nobody"]) == 1
    assert "找不到员工 E77" in caplog.text
    assert main(["user", "link-wecom", "E02", "two words"]) == 1
    assert "企业微信账号不正确" in caplog.text

    assert main(["user", "unlink-wecom", "E03"]) == 0
    assert "已解除员工 E03 与企业微信账号的关联" in caplog.text
    with pytest.raises(NotFound):
        wecom_member(database_url, "LiuYang")
    assert main(["user", "unlink-wecom", "E03"]) == 0
    assert "没有关联企业微信账号" in caplog.text
    # Free again: now it may be another employee's.
    assert main(["user", "link-wecom", "E02", "LiuYang"]) == 0
    assert wecom_member(database_url, "LiuYang").employee_id == "E02"

    engine = create_engine_for(database_url)
    try:
        with make_session_factory(engine)() as session:
            trail = session.execute(
                select(AuditLog.action, AuditLog.entity_id, AuditLog.actor_role)
                .where(AuditLog.action.in_(["link_wecom", "unlink_wecom"]))
                .order_by(AuditLog.id)
            ).all()
            shown = " ".join(str(row.detail) for row in session.scalars(select(AuditLog)))
    finally:
        engine.dispose()
    assert [tuple(row) for row in trail] == [
        ("link_wecom", "E03", "operator"),
        ("unlink_wecom", "E03", "operator"),
        ("link_wecom", "E02", "operator"),
    ]
    assert "LiuYang" not in shown
