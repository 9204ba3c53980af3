"""`crmbot visit parse` as a person runs it: the extraction as JSON or in Chinese, nothing saved."""

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import Interaction
from crmbot.cli import main


@pytest.fixture(autouse=True)
def demo_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh embedded store (the command loads the demo company into it) on the demo day."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    return url


def test_parse_prints_the_extraction_as_json_and_saves_nothing(
    demo_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "刚和华峰科技的王芳通了电话，她对二期报价挺感兴趣，下周二再联系她"
    assert main(["visit", "parse", text, "--as", "E03", "--json"]) == 0

    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    assert json.loads(out[0]) == {
        "customer_id": "C0003",
        "candidates": [],
        "kind": "电话",
        "occurred_at": "2026-11-23",
        "summary": "刚和华峰科技的王芳通了电话，她对二期报价挺感兴趣",
        "next_step": "联系王芳",
        "next_date": "2026-12-01",
    }
    engine = create_engine_for(demo_store_url)
    with make_session_factory(engine)() as session:
        assert not session.scalar(
            select(func.count()).select_from(Interaction).where(Interaction.occurred_at == "2026-11-23")
        )
    engine.dispose()


def test_another_salesperson_gets_no_customer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["visit", "parse", "今天拜访了华峰科技的王芳", "--as", "E02", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["customer_id"], result["candidates"]) == (None, [])


def test_readable_output_lists_candidates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["visit", "parse", "上午见了王总，下周二再联系", "--as", "E03"]) == 0
    out = capsys.readouterr().out
    assert "可能是：王芳（C0003，华峰科技有限公司）、王军（C0043）" in out
    assert "下次跟进：2026年12月1日（周二）" in out


def test_an_unknown_employee_fails(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["visit", "parse", "拜访了王芳", "--as", "E99", "--json"]) == 1
    assert "找不到员工" in caplog.text
