"""The staff web flow in a real browser: sign in on the chat page, ask for a customer, open their page.

Playwright drives the system's chromium (Debian's `chromium` package, installed by
scripts/setup.sh), headless, against the real stack of conftest.py (the demo company, every
employee's password demo1234). E03 刘洋 is the salesperson who owns C0003 王芳 of 华峰科技, so her
phone shows in full; C0001 张伟 belongs to E02 in another region, outside E03's scope.
Every check is on what a person sees on the screen.
"""

import re
from collections.abc import Iterator

import pytest
from e2e_stack import DEMO_PASSWORD, RunningStack
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.e2e

# The bot's first answer of a session can take a few seconds on a busy two-core machine.
WAIT_MS = 60_000

WANG_FANG_PHONE = "17205673406"
PHONE = {"width": 390, "height": 844}  # staff read customer pages on their phones


@pytest.fixture
def page(browser: Browser, running_stack: RunningStack) -> Iterator[Page]:
    """A fresh tab of its own (no sign-in kept from another test), the size of a phone."""
    context = browser.new_context(base_url=running_stack.api_url, locale="zh-CN", viewport=PHONE)
    expect.set_options(timeout=WAIT_MS)
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _sign_in(page: Page, employee: str, password: str) -> None:
    page.goto("/")
    page.get_by_role("button", name="员工登录").click()
    page.get_by_label("工号").fill(employee)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录", exact=True).click()


def test_a_salesperson_opens_a_customer_page_from_the_chat(page: Page) -> None:
    _sign_in(page, "E03", DEMO_PASSWORD)
    expect(page.locator("#staff-who")).to_have_text("刘洋（销售）")

    page.get_by_label("输入消息").fill("查一下王芳的档案")
    page.get_by_label("输入消息").press("Enter")

    card = page.locator("section.card", has=page.get_by_role("heading", name="王芳 · 客户档案"))
    expect(card).to_be_visible()
    expect(card).to_contain_text("华峰科技")

    card.get_by_role("link", name="查看完整档案").click()

    expect(page).to_have_url(re.compile(r"/customers/C0003$"))
    expect(page.get_by_role("heading", name="王芳", exact=True)).to_be_visible()
    contact = page.locator("#contact")
    expect(contact).to_contain_text(WANG_FANG_PHONE)
    expect(contact).not_to_contain_text("****")
    expect(page.locator("#orders tbody tr").first).to_be_visible()
    expect(page.get_by_role("link", name="返回对话")).to_be_visible()


def test_a_wrong_password_shows_why_and_no_staff_mode(page: Page) -> None:
    _sign_in(page, "E05", "not-the-password")

    expect(page.locator("#staff-error")).to_have_text("工号或密码不正确")
    expect(page.locator("#staff-who")).to_be_hidden()
    expect(page.locator("#subtitle")).to_have_text("订单查询 · 投诉建议 · 人工客服")
    expect(page.locator("body")).not_to_have_class(re.compile("staff-mode"))


def test_a_customer_page_without_sign_in_asks_to_sign_in_and_shows_nothing(page: Page) -> None:
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))

    page.goto("/customers/C0003")

    expect(page.get_by_role("status")).to_contain_text("需要先登录员工账号")
    expect(page.get_by_role("link", name="员工登录")).to_have_attribute("href", "/")
    expect(page.locator("body")).not_to_contain_text("王芳")
    assert not [url for url in asked if "/api/customers" in url]


def test_a_customer_outside_ones_scope_is_not_found(page: Page) -> None:
    _sign_in(page, "E03", DEMO_PASSWORD)
    expect(page.locator("#staff-who")).to_have_text("刘洋（销售）")

    page.goto("/customers/C0001")

    expect(page.get_by_role("status")).to_contain_text("没有找到这位客户，或不在您的权限范围内")
    expect(page.locator("body")).not_to_contain_text("张伟")


def test_a_network_failure_asks_to_retry_and_retrying_shows_the_customer(page: Page) -> None:
    _sign_in(page, "E03", DEMO_PASSWORD)
    expect(page.locator("#staff-who")).to_have_text("刘洋（销售）")
    page.route("**/api/customers/**", lambda route: route.abort("internetdisconnected"))

    page.goto("/customers/C0003")

    expect(page.get_by_role("status")).to_contain_text("网络连接异常")
    page.unroute("**/api/customers/**")
    page.get_by_role("button", name="重试").click()
    expect(page.get_by_role("heading", name="王芳", exact=True)).to_be_visible()
