"""`crmbot analytics refresh` as a person runs it: every customer scored, a summary in Chinese or JSON."""

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import Customer, CustomerScore
from crmbot.cli import main


@pytest.fixture(autouse=True)
def demo_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh embedded store with the demo company (loaded by `crmbot customer show`), on the demo day."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    assert main(["customer", "show", "C0001", "--as", "E08", "--json"]) == 0
    return url


def _scores(url: str) -> tuple[int, list[CustomerScore]]:
    engine = create_engine_for(url)
    try:
        with make_session_factory(engine)() as session:
            customers = len(session.scalars(select(Customer.customer_id)).all())
            return customers, list(session.scalars(select(CustomerScore)))
    finally:
        engine.dispose()


def test_refresh_scores_every_customer_and_says_so_in_chinese(
    demo_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["analytics", "refresh"]) == 0
    out = capsys.readouterr().out
    customers, rows = _scores(demo_store_url)
    assert f"已重算 {customers} 位客户的价值与风险评分（截至 2026-11-23" in out
    assert "价值等级：关键 24 位，普通 13 位，小客户 23 位" in out
    assert len(rows) == customers and {r.computed_on.isoformat() for r in rows} == {"2026-11-23"}


def test_refresh_for_another_day_as_json(demo_store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["analytics", "refresh", "--today", "2026-06-30", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    customers, rows = _scores(demo_store_url)
    assert summary["today"] == "2026-06-30" and summary["customers"] == customers
    assert sum(summary["value_tiers"].values()) == customers == sum(summary["lifecycles"].values())
    assert {r.computed_on.isoformat() for r in rows} == {"2026-06-30"}
