"""A handle on the running stack that the e2e tests chat with, as a customer or a signed-in employee."""

import json
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from crmbot import paths
from crmbot.training import rasa_environment

REFERENCE_DAY = "2026-11-23"
"""The demo company's reference day, which every stack of the e2e tests runs on (`CRM_TODAY`)."""
DEMO_PASSWORD = "demo1234"
"""Every demo employee's password when `crmbot up` loads the demo company."""
WECHAT_TOKEN = "e2e-wechat-token"
"""The WeChat Official Account's Token the stack runs with (`CRM_WECHAT_TOKEN`): the channel is on."""
WECOM_TOKEN = "e2e-wecom-token"
WECOM_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"  # 43 characters, as WeCom makes them
WECOM_CORP_ID = "wwe2e0000000000001"
WECOM_AGENT_ID = 1000002
"""The WeCom app the stack runs with (`CRM_WECOM_*`): the staff channel is on."""


def json_from_rasa_environment(script: str, *args: str, timeout: int = 300) -> Any:
    """Run a Python `script` in the Rasa environment (the project root as working directory, the
    environment Rasa runs with) and return the JSON it printed on its last line."""
    result = subprocess.run(
        [paths.rasa_server_command()[0], "-c", script, *args],
        cwd=paths.PROJECT_ROOT,
        env=rasa_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def stop_with_ctrl_c(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to `crmbot up`, as a person would press it: every process of the group must stop."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def free_port() -> int:
    """A loopback port nothing listens on right now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports nothing listens on (replicas' ports)."""
    while True:
        first = free_port()
        if all(_is_free(first + i) for i in range(1, count)):
            return first


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def log_tail(path: Path, lines: int = 60) -> str:
    """The last lines of a stack's log, for a failure message."""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class RunningStack:
    api_url: str
    database_url: str
    rasa_port: int
    action_port: int
    api_port: int
    log_file: Path

    def sign_in(self, employee: str) -> str:
        """An employee's bearer token, from the real sign-in with the demo password."""
        response = httpx.post(
            f"{self.api_url}/api/auth/login",
            json={"username": employee, "password": DEMO_PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def chat(self, sender: str, message: str, *, token: str | None = None) -> list[dict[str, Any]]:
        """One turn through `POST /api/chat`: as a customer, or as the employee of `token`."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            f"{self.api_url}/api/chat",
            json={"sender": sender, "message": message},
            headers=headers,
            timeout=60,
        )
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()
        return messages

    def chat_text(self, sender: str, message: str, *, token: str | None = None) -> str:
        return "\n".join(str(m.get("text", "")) for m in self.chat(sender, message, token=token))

    def updates(self, sender: str, *, token: str | None = None) -> list[dict[str, Any]]:
        """What the page's poll (`GET /api/chat/updates`) shows now: staff replies, care messages."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(
            f"{self.api_url}/api/chat/updates", params={"sender": sender}, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()
        return messages
