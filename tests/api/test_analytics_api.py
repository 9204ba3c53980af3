"""`/api/analytics` and `/dashboard` through real staff tokens on the demo company (2026-11-23).

Every figure is checked against plain SQL over the demo fixture, never against the engine's output.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from api_stubs import Headers
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.routes.analytics import KPI_METRICS
from crm_store.handoff import open_handoff
from crm_store.settings import PROJECT_ROOT
from crm_store.vocab import HANDOFF_REASON_ASKED

COUNTED = "o.status NOT IN ('待付款', '已取消', '已退款')"
NOVEMBER_SO_FAR = ("2026-11-01", "2026-11-23")
OCTOBER = ("2026-10-01", "2026-10-31")


def _sales(demo: sessionmaker[Session], days: tuple[str, str], where: str = "1 = 1") -> tuple[Decimal, int]:
    """Sales and counted orders of the customers matching `where`, by plain SQL."""
    with demo() as session:
        total, count = session.execute(
            text(
                "SELECT COALESCE(SUM(o.amount), 0), COUNT(*) FROM orders o"
                " JOIN customers c ON c.customer_id = o.customer_id"
                f" WHERE {COUNTED} AND o.order_date BETWEEN :start AND :end AND {where}"
            ),
            {"start": days[0], "end": days[1]},
        ).one()
    return Decimal(str(total)).quantize(Decimal("0.01")), int(count)


def _kpis(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get("/api/analytics/kpis", headers=headers)
    assert response.status_code == 200, response.text
    return {kpi["metric"]: kpi for kpi in response.json()["kpis"]}


# -- who may ask --------------------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/api/analytics/ask", {"question": "上个月各地区的销售额"}),
    ("POST", "/api/analytics/query", {"spec": {"metric": "sales"}}),
    ("GET", "/api/analytics/kpis", None),
    ("GET", "/api/analytics/service-metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_customers_and_strangers_get_no_figures(
    client: TestClient, demo: sessionmaker[Session], method: str, path: str, body: dict[str, Any] | None
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401
        assert "登录" in response.json()["detail"]
        assert "¥" not in response.text


def test_service_metrics_are_for_managers_and_admins(client: TestClient, as_: Headers) -> None:
    refused = client.get("/api/analytics/service-metrics", headers=as_("E02"))
    assert refused.status_code == 403
    assert refused.json()["detail"] == "您的角色无权进行此操作"
    for manager in ("E01", "E08"):
        assert client.get("/api/analytics/service-metrics", headers=as_(manager)).status_code == 200


# -- the standing KPIs --------------------------------------------------------------------------------


def test_kpis_are_each_askers_own_scope(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    scopes = {"E01": "c.region = '华东'", "E02": "c.owner_id = 'E02'", "E08": "1 = 1"}
    for employee, where in scopes.items():
        kpis = _kpis(client, as_(employee))
        assert list(kpis) == list(KPI_METRICS)
        now_sales, now_orders = _sales(demo, NOVEMBER_SO_FAR, where)
        before_sales, before_orders = _sales(demo, OCTOBER, where)
        assert Decimal(str(kpis["sales"]["current"])).quantize(Decimal("0.01")) == now_sales, employee
        assert Decimal(str(kpis["sales"]["previous"])).quantize(Decimal("0.01")) == before_sales, employee
        assert (kpis["orders"]["current"], kpis["orders"]["previous"]) == (now_orders, before_orders)
        assert kpis["sales"]["current_text"] == f"¥{now_sales:,.2f}"
        assert kpis["orders"]["label"] == "订单数"
    # A 华东 manager's figure is not the company's, and a salesperson's not their region's.
    assert _sales(demo, OCTOBER, "c.region = '华东'") != _sales(demo, OCTOBER)


def test_kpis_name_this_month_and_last(client: TestClient, as_: Headers) -> None:
    body = client.get("/api/analytics/kpis", headers=as_("E01")).json()
    assert (body["current_period"]["start"], body["current_period"]["end"]) == NOVEMBER_SO_FAR
    assert (body["previous_period"]["start"], body["previous_period"]["end"]) == OCTOBER


# -- questions and specs --------------------------------------------------------------------------------


def test_a_question_gets_its_figures_table_and_chart(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    response = client.post(
        "/api/analytics/ask", json={"question": "上个月各地区的销售额"}, headers=as_("E08")
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["kind"] == "result"
    assert answer["spec"]["metric"] == "sales" and answer["spec"]["group_by"] == ["region"]
    assert answer["chart"] in ("bar", "pie")
    result = answer["result"]
    assert result["columns"] == ["地区", "销售额"]
    figures = {row[0]: Decimal(str(row[1])).quantize(Decimal("0.01")) for row in result["rows"]}
    with demo() as session:
        expected = {
            region: Decimal(str(total)).quantize(Decimal("0.01"))
            for region, total in session.execute(
                text(
                    "SELECT c.region, SUM(o.amount) FROM orders o"
                    " JOIN customers c ON c.customer_id = o.customer_id"
                    f" WHERE {COUNTED} AND o.order_date BETWEEN :start AND :end GROUP BY c.region"
                ),
                {"start": OCTOBER[0], "end": OCTOBER[1]},
            )
        }
    assert figures == expected
    east = next(row for row in result["display_rows"] if row[0] == "华东")
    assert east[1] == f"¥{expected['华东']:,.2f}"
    assert "2026年10月" in result["interpretation"]


def test_a_manager_sees_their_region_and_is_refused_another(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    own = client.post(
        "/api/analytics/ask", json={"question": "上个月各地区的销售额"}, headers=as_("E01")
    ).json()
    assert [row[0] for row in own["result"]["rows"]] == ["华东"]
    refused = client.post("/api/analytics/ask", json={"question": "上个月华南的销售额"}, headers=as_("E01"))
    assert refused.status_code == 403
    assert "华南" in refused.json()["detail"] and "范围" in refused.json()["detail"]
    south, _ = _sales(demo, OCTOBER, "c.region = '华南'")
    assert f"{south:,.2f}" not in refused.text


def test_a_follow_up_keeps_the_previous_question(client: TestClient, as_: Headers) -> None:
    first = client.post(
        "/api/analytics/ask", json={"question": "上个月各地区的销售额"}, headers=as_("E08")
    ).json()
    then = client.post(
        "/api/analytics/ask", json={"question": "那上上个月呢", "previous": first["spec"]}, headers=as_("E08")
    ).json()
    assert then["spec"]["metric"] == "sales" and then["spec"]["group_by"] == ["region"]
    assert then["spec"]["period"]["start"] == "2026-09-01"


def test_a_spec_runs_as_the_chat_link_gives_it(
    client: TestClient, as_: Headers, demo: sessionmaker[Session]
) -> None:
    spec = {
        "metric": "orders",
        "group_by": [],
        "filters": {"region": ["华东"]},
        "period": {"start": "2026-10-01", "end": "2026-10-31", "label": "2026年10月"},
        "top_n": None,
        "order": "desc",
    }
    response = client.post("/api/analytics/query", json={"spec": spec}, headers=as_("E01"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chart"] is None  # a single number
    assert body["result"]["total"] == _sales(demo, OCTOBER, "c.region = '华东'")[1]
    assert body["spec"] == spec


@pytest.mark.parametrize(
    "spec",
    [
        {"metric": "happiness"},
        {"metric": "sales", "group_by": ["planet"]},
        {"metric": "complaints", "group_by": ["opportunity_stage"]},
        {"metric": "sales", "period": {"start": "2026-13-01", "end": "2026-10-31"}},
    ],
)
def test_a_spec_the_layer_cannot_compute_is_422(
    client: TestClient, as_: Headers, spec: dict[str, Any]
) -> None:
    response = client.post("/api/analytics/query", json={"spec": spec}, headers=as_("E01"))
    assert response.status_code == 422
    assert "¥" not in response.text


def test_a_spec_outside_the_scope_is_403_without_figures(client: TestClient, as_: Headers) -> None:
    spec = {"metric": "sales", "filters": {"region": ["华南"]}}
    response = client.post("/api/analytics/query", json={"spec": spec}, headers=as_("E02"))
    assert response.status_code == 403
    assert "华南" in response.json()["detail"]


# -- service metrics ----------------------------------------------------------------------------------


def test_service_metrics_read_the_tracker_beside_the_store(
    client: TestClient, as_: Headers, demo: sessionmaker[Session], database_url: str
) -> None:
    empty = client.get("/api/analytics/service-metrics?days=30", headers=as_("E08")).json()
    assert empty["conversations"] == 0 and empty["deflection_rate"] is None
    assert (empty["period"]["start"], empty["period"]["end"]) == ("2026-10-25", "2026-11-23")
    # Rasa's tracker beside a SQLite store (crmbot up's default): one chat a minute ago, handed off.
    tracker_file = Path(database_url.removeprefix("sqlite:///")).with_name("tracker.db")
    writer = create_engine(f"sqlite:///{tracker_file}")
    now = datetime.now(UTC).timestamp() - 60
    with writer.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL,"
                " type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255),"
                " action_name VARCHAR(255), data TEXT)"
            )
        )
        for type_name, intent, action, data in (
            ("user", "request_human", None, {"event": "user", "text": "转人工"}),
            ("action", None, "action_request_human", {"event": "action", "name": "action_request_human"}),
        ):
            connection.execute(
                text(
                    "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)"
                    " VALUES ('web-1', :type, :at, :intent, :action, :data)"
                ),
                {"type": type_name, "at": now, "intent": intent, "action": action, "data": json.dumps(data)},
            )
    writer.dispose()
    with demo.begin() as session:
        open_handoff(session, conversation="web-1", reason=HANDOFF_REASON_ASKED)
    figures = client.get("/api/analytics/service-metrics?days=7", headers=as_("E08")).json()
    assert (figures["conversations"], figures["handoff_conversations"]) == (1, 1)
    assert figures["handoff_rate"] == 1.0 and figures["deflection_rate"] == 0.0
    assert figures["period"]["label"] == "最近7天"
    # 华东's manager: an anonymous chat belongs to no region.
    assert client.get("/api/analytics/service-metrics", headers=as_("E01")).json()["conversations"] == 0


# -- the page -----------------------------------------------------------------------------------------


def test_the_dashboard_and_its_chart_library_are_served_here(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert "看板" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = client.get("/static/vendor/plotly.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "max-age=31536000" in script.headers["cache-control"]
    assert "plotly" in script.text[:2000].lower()


def test_the_dashboard_loads_nothing_from_the_internet() -> None:
    for name in ("dashboard.html", "dashboard.js", "dashboard.css"):
        source = (PROJECT_ROOT / "api" / "static" / name).read_text(encoding="utf-8")
        assert "http://" not in source and "https://" not in source and "//cdn" not in source, name
