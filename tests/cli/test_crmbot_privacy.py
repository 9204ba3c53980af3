"""`crmbot privacy export|erase CUSTOMER_ID` as a person runs it, on the demo company and a tracker store."""

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import AuditLog, Customer
from crmbot.cli import main
from crmbot.preparation import prepare_store
from tests.store.test_service_metrics import Tracker


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo company loaded once; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("demo") / "crm.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        prepare_store(engine, load_demo=True)
    finally:
        engine.dispose()  # checkpoints the WAL into the file, so it copies whole
    return path


@pytest.fixture(autouse=True)
def store_url(demo_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo company in an embedded store; its tracker store would be `tracker.db` beside it."""
    shutil.copyfile(demo_file, tmp_path / "crm.db")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.delenv("CRM_TRACKER_URL", raising=False)
    return url


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Tracker]:
    engine = create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")  # where CRM_TRACKER_URL unset puts it
    try:
        yield Tracker(engine)
    finally:
        engine.dispose()


@contextmanager
def _session(url: str) -> Iterator[Session]:
    engine = create_engine_for(url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _answer(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_export_json_holds_her_orders_and_a_conversation_of_hers(
    tracker: Tracker, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    moment = datetime.now(clock.TZ)
    tracker.slot("web-zw", moment, "verified_customer_id", "C0001")
    tracker.turn("web-zw", moment, "我的快递到哪了", "check_order_status", "action_check_order_status")

    assert main(["privacy", "export", "c0001", "--json"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    data = json.loads(line)
    assert data["profile"]["name"] == "张伟"
    assert "SO202611180001" in {order["order_id"] for order in data["orders"]}
    assert data["conversations"][0]["messages"][0] == {
        "who": "customer",
        "text": "我的快递到哪了",
        "at": moment.isoformat(),
    }
    with _session(store_url) as session:
        row = session.scalars(select(AuditLog).where(AuditLog.action == "export_personal_data")).one()
    assert (row.actor_role, row.entity_id) == ("operator", "C0001")


def test_export_without_json_is_a_chinese_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["privacy", "export", "C0001"]) == 0
    out = capsys.readouterr().out
    assert "客户 C0001（张*）保存的信息：" in out and "· 订单：" in out
    assert "张伟" not in out and "18201164104" not in out


def test_erase_asks_first_and_a_no_changes_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _answer(monkeypatch, "n\n")
    assert main(["privacy", "erase", "C0058"]) == 1
    out = capsys.readouterr().out
    assert "将删除客户 C0058（钱*）的个人信息" in out and "确定要删除吗？[y/N]" in out
    with _session(store_url) as session:
        assert session.get(Customer, "C0058").name == "钱娟"  # type: ignore[union-attr]

    _answer(monkeypatch, "")  # no answer at all (end of input) is a no as well
    assert main(["privacy", "erase", "C0058"]) == 1

    _answer(monkeypatch, "y\n")
    assert main(["privacy", "erase", "C0058"]) == 0
    assert "已删除客户 C0058 的个人信息" in capsys.readouterr().out
    with _session(store_url) as session:
        customer = session.get(Customer, "C0058")
        assert customer is not None and customer.phone is None and customer.name == "匿名客户"


def test_erase_with_yes_does_not_ask_and_twice_is_fine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _answer(monkeypatch, "")
    assert main(["privacy", "erase", "C0058", "--yes"]) == 0
    assert main(["privacy", "erase", "C0058", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "确定要删除吗" not in out
    assert "客户 C0058 的个人信息此前已删除" in out


@pytest.mark.parametrize("command", ["export", "erase"])
def test_an_unknown_customer_is_one_clear_sentence_and_exit_1(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["privacy", command, "C9999", "--yes" if command == "erase" else "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "找不到客户 C9999。" and captured.out == ""
