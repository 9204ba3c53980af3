"""`crmbot up`: prepare the store and the model, then run Rasa, the action server, the API and care.

The four processes run under crmbot/supervisor.py: each log line carries the process name, a
process that dies is restarted with a growing wait (CRM_RESTART_* settings), and Ctrl-C or SIGTERM
stops all of them. `care` is the proactive
care scheduler (`crmbot care run`, care/scheduler.py); if another one already runs on the same
database, this one waits and takes over when that one stops.

`crmbot up --scale` runs the scale profile instead (docs/operations.md, Running at scale):
`CRM_RASA_REPLICAS` Rasa servers (`rasa-1`, `rasa-2` …, on consecutive ports) sharing the
PostgreSQL tracker store and Rasa's Redis lock store (`CRM_LOCK_STORE_URL`), each with its own
action server (`actions-1` …); one API with `CRM_API_WORKERS` workers, which spreads conversations
over the replicas (api/rasa_servers.py) and shares its state in Redis (`CRM_REDIS_URL`, the lock
store's server when unset); one care scheduler.
"""

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import yaml
from sqlalchemy.engine import make_url

from crm_store.settings import (
    VAR_DIR,
    StoreSettings,
    get_api_settings,
    get_stack_settings,
    get_store_settings,
)
from crmbot import paths
from crmbot.supervisor import Backoff, Program, Supervisor
from crmbot.training import rasa_environment

logger = logging.getLogger(__name__)


# Rasa's own lock store settings: a ticket lock outlives a replica killed while holding it by at
# most this long, so it is short, yet well above the slowest turn (about 5 s under load).
LOCK_LIFETIME_S: Final = 20
RUN_DIR: Final = VAR_DIR / "run"


class ScaleRefused(ValueError):
    """The settings cannot run the scale profile; the message says which and what to set."""


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
    rasa_replicas: int = 1
    api_workers: int = 1
    lock_store_url: str | None = None
    redis_url: str | None = None

    @classmethod
    def from_settings(cls, *, scale: bool = False) -> "Stack":
        """The embedded stack, or with `scale` the scale profile.

        Raises:
            ScaleRefused: `scale` without a PostgreSQL database or without `CRM_LOCK_STORE_URL`.
        """
        store = get_store_settings()
        stack = get_stack_settings()
        api = get_api_settings()
        rasa_token = api.rasa_token
        replicas, workers, lock_store, redis = 1, 1, None, None
        if scale:
            if make_url(store.database_url).get_backend_name() != "postgresql":
                raise ScaleRefused(
                    "多副本运行需要 PostgreSQL：请把 CRM_DATABASE_URL 设为 postgresql+psycopg://…"
                    "（各个 Rasa 副本共用其中的对话记录）"
                )
            if stack.lock_store_url is None:
                raise ScaleRefused(
                    "多副本运行需要 Redis 锁存储：请设置 CRM_LOCK_STORE_URL，例如 redis://127.0.0.1:6379/1"
                )
            replicas, workers, lock_store = stack.rasa_replicas, stack.api_workers, stack.lock_store_url
            # The API workers share rate limits, tokens and button choices in Redis.
            redis = api.redis_url or stack.lock_store_url
        return cls(
            database_url=store.database_url,
            tracker_url=rasa_tracker_url(store),
            rasa_port=stack.rasa_port,
            action_port=stack.action_port,
            api_host=stack.api_host,
            api_port=stack.api_port,
            rasa_token=rasa_token.get_secret_value() if rasa_token is not None else None,
            rasa_replicas=replicas,
            api_workers=workers,
            lock_store_url=lock_store,
            redis_url=redis,
        )

    @property
    def scaled(self) -> bool:
        return self.lock_store_url is not None

    @property
    def rasa_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.rasa_port + i}" for i in range(self.rasa_replicas)]

    @property
    def action_server_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.action_port + i}" for i in range(self.rasa_replicas)]

    @property
    def rasa_url(self) -> str:
        return self.rasa_urls[0]

    @property
    def action_server_url(self) -> str:
        return self.action_server_urls[0]

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
        CRM_RASA_URL=",".join(stack.rasa_urls),
        CRM_ACTION_SERVER_URL=",".join(stack.action_server_urls),
        # The action server trusts message metadata, so it must never listen beyond loopback.
        SANIC_HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
        # The API and the action server load the FAQ encoder while starting, not at the first question.
        KNOWLEDGE_WARM_UP="true",
    )
    if stack.redis_url is not None:
        env["CRM_REDIS_URL"] = stack.redis_url
    if stack.scaled:
        env["TICKET_LOCK_LIFETIME"] = str(LOCK_LIFETIME_S)
    return env


def rasa_lock_store(url: str) -> dict[str, object]:
    """Rasa 3.6's `lock_store` section of endpoints.yml for a `redis://` URL.

    Rasa takes the host, port, database and password as separate keys (its `url` is the host).
    """
    redis = make_url(url)
    section: dict[str, object] = {
        "type": "redis",
        "url": redis.host or "127.0.0.1",
        "port": redis.port or 6379,
        "db": int(redis.database) if redis.database else 1,
        # Alphanumeric only (Rasa refuses others); keeps two shops on one Redis apart.
        "key_prefix": "xiaozhushou",
        "use_ssl": redis.drivername == "rediss",
    }
    if redis.password is not None:
        section["password"] = str(redis.password)
    return section


def write_scale_endpoints(stack: Stack, run_dir: Path = RUN_DIR) -> Path:
    """bot/endpoints.yml with the Redis lock store added, for the replicas.

    One file per stack (named by its first Rasa port), mode 0600: it may hold Redis's password.
    """
    assert stack.lock_store_url is not None
    endpoints = yaml.safe_load((paths.BOT_DIR / "endpoints.yml").read_text(encoding="utf-8"))
    endpoints["lock_store"] = rasa_lock_store(stack.lock_store_url)
    path = run_dir / f"endpoints-scale-{stack.rasa_port}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(
        "# Written by `crmbot up --scale` (crmbot/stack.py) from bot/endpoints.yml; do not edit.\n"
        + yaml.safe_dump(endpoints, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return path


def process_commands(stack: Stack, model: Path, endpoints: Path | None = None) -> dict[str, list[str]]:
    """Each process's command by name: `rasa`, `actions`, `api`, `care`, or with replicas
    `rasa-1`, `actions-1`, `rasa-2` … (`endpoints`: the replicas' endpoints file)."""
    commands: dict[str, list[str]] = {}
    for i in range(stack.rasa_replicas):
        suffix = f"-{i + 1}" if stack.scaled else ""
        rasa = [
            *paths.rasa_server_command(), "run",
            "--model", str(model),
            "--endpoints", str(endpoints or paths.BOT_DIR / "endpoints.yml"),
            "--credentials", str(paths.BOT_DIR / "credentials.yml"),
            "--interface", "127.0.0.1",
            "--port", str(stack.rasa_port + i),
            "--enable-api",
        ]  # fmt: skip
        if stack.rasa_token:
            rasa += ["--auth-token", stack.rasa_token]
        commands[f"rasa{suffix}"] = rasa
        commands[f"actions{suffix}"] = [sys.executable, "-m", "actions", "--port", str(stack.action_port + i)]
    api = [
        sys.executable, "-m", "uvicorn", "api.main:app",
        "--host", stack.api_host, "--port", str(stack.api_port), "--no-server-header",
    ]  # fmt: skip
    if stack.api_workers > 1:
        # uvicorn's own manager restarts a worker that dies.
        api += ["--workers", str(stack.api_workers)]
    commands["api"] = api
    # `crmbot care run`, without importing the rest of crmbot (crmbot/care_process_cli.py).
    commands["care"] = [sys.executable, "-m", "crmbot.care_process_cli"]
    return commands


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
    endpoints = write_scale_endpoints(stack) if stack.scaled else None
    programs = []
    for name, command in process_commands(stack, model, endpoints).items():
        program_env = action_env if name.startswith("actions") else env
        if name.startswith("rasa-"):
            # Each replica calls its own action server.
            action_url = stack.action_server_urls[int(name.removeprefix("rasa-")) - 1]
            program_env = {**env, "CRM_ACTION_WEBHOOK_URL": f"{action_url}/webhook"}
        programs.append(Program(name, command, env=program_env, cwd=str(paths.PROJECT_ROOT)))
    return programs


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
