"""`crmbot query` and `crmbot query-eval` as a person runs them, on the demo company.

Figures are checked against SQL written here by hand (the counted-order rule: every status except
待付款, 已取消 and 已退款), not against the query engine's own output.
"""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from crm_store.db import create_engine_for
from crmbot.cli import main


@pytest.fixture(autouse=True)
def demo_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh embedded store (the command loads the demo company into it) on the demo day."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    return url


def _scalar(url: str, sql: str) -> Decimal:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return Decimal(str(connection.execute(text(sql)).scalar() or 0))
    finally:
        engine.dispose()


def test_the_issue_example_matches_hand_written_sql(
    demo_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "本月华东区的销售额", "--as", "E01", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["spec"]["metric"] == "sales"
    assert result["spec"]["filters"] == {"region": ["华东"]}
    assert (result["spec"]["period"]["start"], result["spec"]["period"]["end"]) == (
        "2026-11-01",
        "2026-11-23",
    )
    expected = _scalar(
        demo_store_url,
        "SELECT SUM(o.amount) FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
        "WHERE c.region = '华东' AND o.order_date BETWEEN '2026-11-01' AND '2026-11-23' "
        "AND o.status NOT IN ('待付款', '已取消', '已退款')",
    )
    assert Decimal(str(result["total"])) == expected
    assert "销售额" in result["answer"]


def test_a_ranked_question_prints_its_rows(demo_store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["query", "上个月华东区销售额最高的五个客户", "--as", "E01", "--today", "2026-11-23", "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["spec"]["group_by"] == ["customer"] and result["spec"]["top_n"] == 5
    first = _scalar(
        demo_store_url,
        "SELECT MAX(s) FROM (SELECT SUM(o.amount) AS s FROM orders o JOIN customers c "
        "ON c.customer_id = o.customer_id WHERE c.region = '华东' AND o.order_date BETWEEN "
        "'2026-10-01' AND '2026-10-31' AND o.status NOT IN ('待付款', '已取消', '已退款') "
        "GROUP BY o.customer_id) t",
    )
    assert 1 <= len(result["rows"]) <= 5
    assert Decimal(str(result["rows"][0][-1])) == first


def test_a_question_outside_the_scope_is_refused_without_figures(capsys: pytest.CaptureFixture[str]) -> None:
    # 王丽 (E02) sells in 华东: 华南's figures are not hers to see.
    assert main(["query", "上个月华南的销售额", "--as", "E02", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "抱歉" in captured.err and "权限范围" in captured.err
    assert not any(ch.isdigit() for ch in captured.err)


def test_someone_who_is_not_an_employee_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "本月的销售额", "--as", "C0001"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "员工" in captured.err


def test_a_question_without_a_metric_is_asked_back(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "华东怎么样", "--as", "E01", "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert "销售额" in result["clarify"]["options"]


def test_query_eval_scores_each_slot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    period = {"start": "2026-10-01", "end": "2026-10-31"}
    before = {"start": "2026-09-01", "end": "2026-09-30"}
    this_month = {"start": "2026-11-01", "end": "2026-11-23"}
    items = [
        {"question": "上个月各地区的销售额", "today": "2026-11-23", "as": "E01", "previous": None,
         "expected": {"metric": "sales", "group_by": ["region"], "filters": {}, "period": period,
                      "top_n": None, "order": "desc"}},
        {"question": "那上上个月呢", "today": "2026-11-23", "as": "E01",
         "previous": {"metric": "sales", "group_by": ["region"], "filters": {}, "period": period,
                      "top_n": None, "order": "desc"},
         "expected": {"metric": "sales", "group_by": ["region"], "filters": {},
                      "period": before, "top_n": None, "order": "desc"}},
        # Deliberately wrong expectation (the period is last month, not this one): one miss.
        {"question": "上个月的订单数", "today": "2026-11-23", "as": "E01", "previous": None,
         "expected": {"metric": "orders", "group_by": [], "filters": {},
                      "period": this_month, "top_n": None, "order": "desc"}},
        {"question": "上个月的利润", "today": "2026-11-23", "as": "E01", "previous": None,
         "expected": {"unsupported": True}},
        {"question": "华东怎么样", "today": "2026-11-23", "as": "E01", "previous": None,
         "expected": {"clarify": True}},
    ]  # fmt: skip
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n", encoding="utf-8")

    assert main(["query-eval", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 5 and report["with_spec"] == 3
    assert report["slots"] == {"metric": 1.0, "group_by": 1.0, "filters": 1.0, "period": 0.6667, "top_n": 1.0}
    assert report["overall"] == 0.8
    assert [m["question"] for m in report["misses"]] == ["上个月的订单数"]

    assert main(["query-eval", str(path), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "时间范围" in out and "66.7%" in out and "80.0%" in out
    assert "上个月的订单数" in out
