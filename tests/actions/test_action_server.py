"""The action server (`python -m actions`): nothing happens at import, the warm-up waits for the start."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

import actions.__main__ as server
import actions.support
from crm_store.settings import PROJECT_ROOT, child_environment
from knowledge.holder import KnowledgeHolder
from knowledge.service import KnowledgeService

IMPORT_EVERYTHING = """
import sys, threading
import actions.__main__, actions.complaints, actions.faq, actions.handoff, actions.identity
import actions.orders, actions.support
assert threading.active_count() == 1, threading.enumerate()
assert actions.support.knowledge_holder.cache_info().currsize == 0
assert actions.support._session_factory.cache_info().currsize == 0
print("quiet")
"""


def test_importing_the_actions_starts_no_thread_and_opens_nothing() -> None:
    env = child_environment({"KNOWLEDGE_WARM_UP": "1"})
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "quiet"


class _StubApp:
    def __init__(self) -> None:
        self.listeners: list[tuple[str, Any]] = []

    def register_listener(self, listener: Any, event: str) -> None:
        self.listeners.append((event, listener))


@pytest.mark.parametrize("warm_up", ["1", "0"])
def test_the_app_warms_the_knowledge_base_up_after_the_server_starts(
    warm_up: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWLEDGE_WARM_UP", warm_up)
    app = _StubApp()
    monkeypatch.setattr(server, "create_app_for_serve", lambda *args, **kwargs: app)

    assert server.create_app(None, cors_origins="*", auto_reload=False, endpoints="none.yml") is app  # type: ignore[arg-type]

    expected = [("after_server_start", server.warm_up_knowledge)] if warm_up == "1" else []
    assert app.listeners == expected


def test_the_warm_up_starts_the_one_holders_load(
    action_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[sessionmaker[Session]] = []

    def load(sessions: sessionmaker[Session]) -> KnowledgeService:
        loaded.append(sessions)
        return object()  # type: ignore[return-value]

    holder = KnowledgeHolder(action_store, load=load)
    monkeypatch.setattr(actions.support, "knowledge_holder", lambda: holder)

    asyncio.run(server.warm_up_knowledge(_StubApp()))  # type: ignore[arg-type]

    assert holder.wait(30) and holder.state == "ready"
    assert loaded == [action_store]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_python_m_actions_serves_every_action(tmp_path: Path) -> None:
    port = _free_port()
    env = child_environment(
        {"KNOWLEDGE_WARM_UP": "0", "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}"}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "actions", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Its own process group: the server and its Sanic worker are stopped together.
        start_new_session=True,
    )
    try:
        names: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                names = [a["name"] for a in httpx.get(f"http://127.0.0.1:{port}/actions", timeout=2).json()]
                break
            except httpx.HTTPError:
                time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate()
    assert {"action_request_human", "action_answer_faq", "validate_complaint_form"} <= set(names), stderr[
        -2000:
    ]
