"""`crmbot customer show ID --as EMPLOYEE_ID [--json]` as a person runs it."""

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import AuditLog
from crmbot.cli import main


@pytest.fixture(autouse=True)
def demo_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh embedded store (the command loads the demo company into it), on the demo day."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    return url


def _audit_rows(url: str) -> list[AuditLog]:
    engine = create_engine_for(url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(AuditLog).where(AuditLog.action == "view_customer")))
    finally:
        engine.dispose()


def test_json_is_the_360_view_and_the_read_is_audited_as_that_employee(
    demo_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["customer", "show", "C0003", "--as", "E03", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    view = json.loads(out[0])
    assert view["customer_id"] == "C0003"
    assert view["profile"]["name"] == "王芳"
    assert view["profile"]["phone"] == "17205673406"  # E03 owns her
    assert view["open_opportunities"][0]["opportunity_id"] == "OP001"
    assert view["next_date"] == "2026-11-26"
    (row,) = _audit_rows(demo_store_url)
    assert (row.actor_id, row.entity_id) == ("E03", "C0003")


def test_readable_chinese_without_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["customer", "show", "C0001", "--as", "E01"]) == 0
    out = capsys.readouterr().out
    assert "客户 C0001：张伟" in out
    assert "电话：182****4104" in out  # the manager is not the owner
    assert "T09001" in out
    assert "下次生日：2026年11月25日" in out
    assert "价值评分：待评分" in out and "流失风险：2%" in out
    assert "18201164104" not in out


@pytest.mark.parametrize(("employee", "customer"), [("E02", "C0003"), ("E01", "C0003"), ("E06", "C0003")])
def test_out_of_scope_is_a_clear_chinese_message_and_exit_1(
    demo_store_url: str, employee: str, customer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["customer", "show", customer, "--as", employee, "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"找不到客户 {customer}" in captured.err and "权限范围" in captured.err
    assert "王芳" not in captured.err
    assert _audit_rows(demo_store_url) == []


def test_unknown_employee_and_admin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["customer", "show", "C0001", "--as", "E42"]) == 1
    assert "员工 E42 不存在" in capsys.readouterr().err
    assert main(["customer", "show", "c0003", "--as", "e08", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["phone"] == "172****3406"
