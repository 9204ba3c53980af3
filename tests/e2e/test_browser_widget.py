"""Rasa's standard web widget (rasa-webchat from npm, unmodified) in a real browser against the stack.

The page `/widget` loads the widget the API serves and points it at the API's Socket.IO channel,
so every turn here goes widget → socket.io → api.gateway → the real Rasa and action server.
Checks are on what a customer sees in the widget: the answer's text, its buttons, and the answer
to a button pressed. Selectors are the widget's own documented class names (`rw-…`, its README).
"""

from collections.abc import Iterator

import pytest
from e2e_stack import RunningStack
from playwright.sync_api import Browser, Page, expect

from api.routes.widget import WIDGET_SCRIPT

pytestmark = pytest.mark.e2e

# The bot's first answer of a session can take a few seconds on a busy two-core machine.
WAIT_MS = 60_000


@pytest.fixture
def widget(browser: Browser, running_stack: RunningStack) -> Iterator[Page]:
    """The widget page in a fresh tab (a conversation of its own), the widget opened."""
    if not WIDGET_SCRIPT.is_file():
        pytest.fail(f"{WIDGET_SCRIPT} not found: scripts/vendor-webchat.sh (run by make setup) fetches it")
    context = browser.new_context(base_url=running_stack.api_url, locale="zh-CN")
    expect.set_options(timeout=WAIT_MS)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        page.goto("/widget")
        page.locator(".rw-launcher").click()
        expect(page.locator(".rw-header")).to_contain_text("小助手")
        yield page
    finally:
        context.close()


def _send(page: Page, text: str) -> None:
    box = page.locator(".rw-new-message")
    box.fill(text)
    box.press("Enter")


def test_the_widget_answers_an_order_question(widget: Page) -> None:
    _send(widget, "帮我查一下订单SO202611180001到哪了")

    answer = widget.locator(".rw-response").filter(has_text="SF1234567890")
    expect(answer).to_contain_text("运输中")
    # An order number alone must not reveal who ordered it.
    expect(widget.locator(".rw-messages-container")).not_to_contain_text("张伟")


def test_the_widget_shows_the_answers_buttons_and_a_pressed_button_is_answered(widget: Page) -> None:
    _send(widget, "下单后多久发货？")

    expect(widget.locator(".rw-response").filter(has_text="24小时内发货")).to_be_visible()
    thumbs_up = widget.locator(".rw-reply").filter(has_text="👍")
    expect(thumbs_up).to_be_visible()

    thumbs_up.click()

    expect(widget.locator(".rw-response").filter(has_text="很高兴能帮到您")).to_be_visible()
