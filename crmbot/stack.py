"""`crmbot up`: prepare the store and the model, then run Rasa, the action server, the API and care.

The four processes run under crmbot/supervisor.py: each log line carries the process name, a
process that dies is restarted with a growing wait (CRM_RESTART_* settings), and Ctrl-C or SIGTERM
stops all of them. `care` is the proactive
care scheduler (`crmbot care run`, care/scheduler.py); if another one already runs on the same
database, this one waits and takes over when that one stops.
"""

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from crm_store.settings import StoreSettings, get_api_settings, get_stack_settings, get_store_settings
from crmbot import paths
from crmbot.supervisor import Backoff, Program, Supervisor
from crmbot.training import rasa_environment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stack:
    """Addresses and files of one running stack, resolved from the settings."""

    database_url: str
    tracker_url: str
    rasa_port: int
    action_port: int
    api_host: str
    api_port: int
    rasa_token: str | None

    @classmethod
    def from_settings(cls) -> "Stack":
        store = get_store_settings()
        stack = get_stack_settings()
        rasa_token = get_api_settings().rasa_token
        return cls(
            database_url=store.database_url,
            tracker_url=rasa_tracker_url(store),
            rasa_port=stack.rasa_port,
            action_port=stack.action_port,
            api_host=stack.api_host,
            api_port=stack.api_port,
            rasa_token=rasa_token.get_secret_value() if rasa_token is not None else None,
        )

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def action_server_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/health"


def rasa_tracker_url(store: StoreSettings) -> str:
    """The tracker store as Rasa is given it: PostgreSQL through the bot environment's psycopg2."""
    if store.tracker_url:
        return store.tracker_url
    url = make_url(store.tracker_database_url())
    if url.get_backend_name() == "sqlite":
        return url.render_as_string(hide_password=False)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def process_environment(stack: Stack) -> dict[str, str]:
    env = rasa_environment()
    env.update(
        CRM_DATABASE_URL=stack.database_url,
        CRM_TRACKER_URL=stack.tracker_url,
        CRM_ACTION_WEBHOOK_URL=f"{stack.action_server_url}/webhook",
        CRM_RASA_URL=stack.rasa_url,
        CRM_ACTION_SERVER_URL=stack.action_server_url,
        # The action server trusts message metadata, so it must never listen beyond loopback.
        SANIC_HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
        # The API and the action server load the FAQ encoder while starting, not at the first question.
        KNOWLEDGE_WARM_UP="true",
    )
    return env


def process_commands(stack: Stack, model: Path) -> dict[str, list[str]]:
    rasa = [
        str(paths.rasa_bin()), "run",
        "--model", str(model),
        "--endpoints", str(paths.BOT_DIR / "endpoints.yml"),
        "--credentials", str(paths.BOT_DIR / "credentials.yml"),
        "--interface", "127.0.0.1",
        "--port", str(stack.rasa_port),
        "--enable-api",
    ]  # fmt: skip
    if stack.rasa_token:
        rasa += ["--auth-token", stack.rasa_token]
    return {
        "rasa": rasa,
        "actions": [
            sys.executable, "-m", "actions", "--port", str(stack.action_port),
        ],
        "api": [
            sys.executable, "-m", "uvicorn", "api.main:app",
            "--host", stack.api_host, "--port", str(stack.api_port), "--no-server-header",
        ],
        # `crmbot care run`, without importing the rest of crmbot (crmbot/care_process_cli.py).
        "care": [sys.executable, "-m", "crmbot.care_process_cli"],
    }  # fmt: skip


def stack_programs(stack: Stack, model: Path) -> list[Program]:
    """The stack's processes as the supervisor runs them: commands, environments, working directory."""
    env = process_environment(stack)
    # rasa-sdk 3.21 warns at every call that it is newer than Rasa 3.6; the HTTP protocol is
    # the same (docs/architecture.md §2), so the warning is expected and only hides real ones.
    action_env = {
        **env,
        "PYTHONWARNINGS": ",".join(
            filter(None, (env.get("PYTHONWARNINGS"), "ignore:Your versions of rasa and rasa_sdk:UserWarning"))
        ),
    }
    return [
        Program(name, command, env=action_env if name == "actions" else env, cwd=str(paths.PROJECT_ROOT))
        for name, command in process_commands(stack, model).items()
    ]


def run_stack(stack: Stack, model: Path, *, on_ready: Callable[[], None] | None = None) -> int:
    """Run the four processes, restarting any that dies, until Ctrl-C or SIGTERM (exit code 130 or 143).

    `on_ready` is called once, from another thread, when `/health` first answers 200.
    """
    settings = get_stack_settings()
    supervisor = Supervisor(
        stack_programs(stack, model),
        backoff=Backoff(
            first_s=settings.restart_wait_s,
            max_s=settings.restart_max_wait_s,
            reset_after_s=settings.restart_reset_after_s,
        ),
    )
    threading.Thread(target=_announce_when_ready, args=(stack, on_ready), daemon=True).start()
    return supervisor.run()


def _announce_when_ready(
    stack: Stack, on_ready: Callable[[], None] | None = None, timeout_s: float = 600.0
) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if httpx.get(stack.health_url, timeout=2.0).status_code == 200:
                logger.info(
                    "小助手已就绪（%.0f 秒）：网页聊天 http://localhost:%d/ ，接口文档 http://localhost:%d/docs",
                    time.monotonic() - started,
                    stack.api_port,
                    stack.api_port,
                )
                if on_ready is not None:
                    on_ready()
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    logger.warning("%.0f 秒后 /health 仍未就绪，请查看上面各进程的日志", timeout_s)
