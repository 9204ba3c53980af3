"""The real stack, once per test session: `crmbot up` on a fresh demo store, chatting over HTTP.

Training is the slow part (minutes on two cores) and is cached by fingerprint under var/models,
so only the first run on a machine, or a run after bot data changed, pays for it.
"""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_stack import (
    REFERENCE_DAY,
    WECHAT_TOKEN,
    WECOM_AES_KEY,
    WECOM_AGENT_ID,
    WECOM_CORP_ID,
    WECOM_TOKEN,
    RunningStack,
    free_port,
    log_tail,
    stop_with_ctrl_c,
)
from playwright.sync_api import Browser, sync_playwright

from crm_store.settings import child_environment
from crmbot.preparation import prepare_demo_model
from tests.care.wecom_api import FakeWecomApi, running_wecom_api
from tests.wechat_api import FakeWechatApi, running_wechat_api

STARTUP_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The model for the demo company (`crmbot train --demo`), trained only if var/models has none
    for these inputs."""
    return prepare_demo_model()


def _port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def wechat_api() -> Iterator[FakeWechatApi]:
    """WeChat's API for the stack's late replies (customer-service messages), on loopback."""
    with running_wechat_api() as fake:
        yield fake


@pytest.fixture(scope="session")
def wecom_api() -> Iterator[FakeWecomApi]:
    """WeCom's API for the stack's late replies and care reminders (app messages), on loopback."""
    with running_wecom_api() as fake:
        yield fake


@pytest.fixture(scope="session")
def running_stack(
    trained_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    wechat_api: FakeWechatApi,
    wecom_api: FakeWecomApi,
) -> Iterator[RunningStack]:
    workdir = tmp_path_factory.mktemp("stack")
    api_port = free_port()
    stack = RunningStack(
        api_url=f"http://127.0.0.1:{api_port}",
        database_url=f"sqlite:///{workdir / 'crm.db'}",
        rasa_port=free_port(),
        action_port=free_port(),
        api_port=api_port,
        log_file=workdir / "stack.log",
    )
    env = child_environment(
        {
            "CRM_DATABASE_URL": stack.database_url,
            "CRM_TODAY": REFERENCE_DAY,
            "CRM_RASA_PORT": str(stack.rasa_port),
            "CRM_ACTION_PORT": str(stack.action_port),
            "CRM_API_PORT": str(stack.api_port),
            "CRM_API_HOST": "127.0.0.1",
            "RASA_TELEMETRY_ENABLED": "false",
            "KNOWLEDGE_DIR": str(workdir / "knowledge"),
            # E-mails, SMS and WeChat messages of proactive care go to spool files: keep them here.
            "CRM_CARE_SPOOL_DIR": str(workdir / "spool"),
            # The WeChat channel on, in plain mode; a turn over the reply budget is answered later
            # through the fake WeChat API.
            "CRM_WECHAT_TOKEN": WECHAT_TOKEN,
            "CRM_WECHAT_APP_ID": "wx-e2e-app",
            "CRM_WECHAT_APP_SECRET": "wx-e2e-secret",
            "CRM_WECHAT_API_BASE": wechat_api.base,
            # The WeCom app for staff, its app messages to the fake WeCom API.
            "CRM_WECOM_TOKEN": WECOM_TOKEN,
            "CRM_WECOM_AES_KEY": WECOM_AES_KEY,
            "CRM_WECOM_CORP_ID": WECOM_CORP_ID,
            "CRM_WECOM_AGENT_ID": str(WECOM_AGENT_ID),
            "CRM_WECOM_SECRET": "wecom-e2e-secret",
            "CRM_WECOM_API_BASE": wecom_api.base,
        }
    )
    env.pop("CRM_TRACKER_URL", None)
    with stack.log_file.open("wb") as log:
        # The same command the README's run command ends with. `make test` tuned the encoder
        # before the tests; where it did not, the stack serves the base model rather than tune it
        # in the background while the tests chat (and switch models under them).
        process = subprocess.Popen(
            [sys.executable, "-m", "crmbot.cli", "up", "--no-tuning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_healthy(stack, process)
            yield stack
        finally:
            stop_with_ctrl_c(process)
    still_listening = [p for p in (stack.rasa_port, stack.action_port, stack.api_port) if _port_is_open(p)]
    assert not still_listening, f"ports still open after Ctrl-C: {still_listening}"


def _wait_until_healthy(stack: RunningStack, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"crmbot up exited with {process.returncode}:\n{log_tail(stack.log_file)}")
        try:
            if httpx.get(f"{stack.api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"the stack was not healthy after {STARTUP_TIMEOUT_S} s:\n{log_tail(stack.log_file)}")


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright: launched once for every browser test."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium. Install it with "
            "`sudo apt-get install chromium` (`make test` does it through scripts/setup.sh when run as root)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()
