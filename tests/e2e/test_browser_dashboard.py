"""The managers' dashboard in a real browser: sign in, KPIs, a question's chart and table, no network.

Playwright drives Debian's chromium headless, as tests/e2e/test_browser_staff.py does. The
dashboard needs only the API and the store (questions are parsed and answered in the API, not by
Rasa), so this test runs the API alone with uvicorn on a free port against a fresh demo SQLite
store on the demo day (2026-11-23), instead of the whole stack of conftest.py: seconds instead of
minutes, and the same page, endpoints and chart library as in production.

Expected figures come from plain SQL over the same store. Every request the page makes is logged,
and each must go to the API on 127.0.0.1: the chart library is the API's, not a CDN's.
"""

import base64
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from e2e_stack import free_port
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import text

from crm_store.accounts import DEMO_PASSWORD, set_demo_passwords
from crm_store.db import create_engine_for, make_session_factory, migrate
from crm_store.importer import import_csv_dir
from crm_store.settings import DEMO_DIR, child_environment

WAIT_MS = 30_000
STARTUP_TIMEOUT_S = 60
PHONE = {"width": 390, "height": 844}  # managers read the dashboard on their phones too
COUNTED = "o.status NOT IN ('待付款', '已取消', '已退款')"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo company in a fresh SQLite store, every employee's password the demo one."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'crm.db'}"
    engine = create_engine_for(url)
    try:
        migrate(engine)
        sessions = make_session_factory(engine)
        assert import_csv_dir(sessions, DEMO_DIR).ok
        with sessions.begin() as session:
            set_demo_passwords(session)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="module")
def api_url(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`uvicorn api.main:app` on a free loopback port, on the demo day."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = tmp_path_factory.mktemp("api-log") / "api.log"
    env = child_environment(
        {
            "CRM_DATABASE_URL": store_url,
            "CRM_TODAY": "2026-11-23",
            "CRM_JWT_SECRET": secrets.token_urlsafe(32),
            "KNOWLEDGE_WARM_UP": "false",
        }
    )
    env.pop("CRM_TRACKER_URL", None)
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the API exited with {process.returncode}:\n{log_file.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/dashboard", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the API did not start in {STARTUP_TIMEOUT_S} s:\n{log_file.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def page(browser: Browser, api_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=api_url, locale="zh-CN", viewport=PHONE)
    expect.set_options(timeout=WAIT_MS)
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _requests(page: Page) -> list[str]:
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    return asked


def _only_loopback(asked: list[str], api_url: str) -> None:
    assert asked, "the page made no request at all"
    elsewhere = [url for url in asked if not url.startswith(api_url + "/")]
    assert not elsewhere, f"requests left the API: {elsewhere}"


def _one(store_url: str, sql: str) -> Any:
    engine = create_engine_for(store_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def _money(value: Any) -> str:
    return f"¥{Decimal(str(value)).quantize(Decimal('0.01')):,.2f}"


def test_a_manager_asks_and_sees_a_bar_chart_and_the_table(page: Page, api_url: str, store_url: str) -> None:
    asked = _requests(page)
    page.goto("/dashboard")
    expect(page.get_by_role("heading", name="员工登录")).to_be_visible()
    page.get_by_label("工号").fill("E01")
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()

    expect(page.locator("#who")).to_have_text("陈思远 · 经理")
    expect(page.locator("#kpis .kpi")).to_have_count(9)
    expect(page.locator("#kpis")).to_contain_text("销售额")
    expect(page.locator("#service")).to_be_visible()  # a manager sees the service metrics

    page.get_by_label("您的问题").fill("上个月各地区的销售额")
    page.get_by_role("button", name="查询").click()

    chart = page.locator("#chart")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator(".barlayer .trace.bars .point path")).to_have_count(1)  # 华东 only: E01's region
    east = _one(
        store_url,
        "SELECT SUM(o.amount) FROM orders o JOIN customers c ON c.customer_id = o.customer_id"
        f" WHERE {COUNTED} AND c.region = '华东' AND o.order_date BETWEEN '2026-10-01' AND '2026-10-31'",
    )
    row = page.locator("#table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text("华东")
    expect(row.locator("td").nth(1)).to_have_text(_money(east))
    expect(page.locator("#answer-text")).to_contain_text("2026年10月")
    _only_loopback(asked, api_url)


def test_the_chat_sign_in_and_its_link_open_a_line_chart(page: Page, api_url: str, store_url: str) -> None:
    asked = _requests(page)
    # Signed in on the chat page: the dashboard reuses that sign-in (same tab, same sessionStorage).
    page.goto("/")
    page.get_by_role("button", name="员工登录").click()
    page.get_by_label("工号").fill("E08")
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.locator("#staff-who")).to_be_visible()

    spec = {
        "metric": "orders",
        "group_by": ["month"],
        "filters": {},
        "period": {"start": "2026-07-01", "end": "2026-10-31", "label": "2026年7月至10月"},
        "top_n": None,
        "order": "desc",
    }
    link = base64.urlsafe_b64encode(json.dumps(spec, ensure_ascii=False).encode()).decode().rstrip("=")
    page.goto(f"/dashboard?spec={link}")

    expect(page.get_by_role("heading", name="员工登录")).to_be_hidden()
    expect(page.locator("#chart .scatterlayer .trace")).to_have_count(1)
    october = _one(
        store_url,
        f"SELECT COUNT(*) FROM orders o WHERE {COUNTED}"
        " AND o.order_date BETWEEN '2026-10-01' AND '2026-10-31'",
    )
    rows = page.locator("#table tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(3).locator("td").nth(0)).to_have_text("2026年10月")
    expect(rows.nth(3).locator("td").nth(1)).to_have_text(f"{october:,} 单")
    _only_loopback(asked, api_url)


def test_a_salesperson_sees_no_service_metrics(page: Page) -> None:
    page.goto("/dashboard")
    page.get_by_label("工号").fill("E02")
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.locator("#kpis .kpi")).to_have_count(9)
    expect(page.locator("#service")).to_be_hidden()
