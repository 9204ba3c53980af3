"""`crmbot care run`: the proactive-care scheduler process (`crmbot up` starts it as `care`).

It runs until Ctrl-C or SIGTERM. Only one runs at a time per database (`care.scheduler`): a second
one waits and takes over when the first stops. The store must be migrated (`crmbot migrate`;
`crmbot up` does it before starting the processes).

`crmbot care run-once` and `crmbot care status` live in `crmbot.care_cli`; this module adds `run`
to the same `care` command, so register it after that one (`add_care_process_commands`).

`crmbot up` runs this module directly (`python -m crmbot.care_process_cli`, the same as
`crmbot care run`): it then loads only the store and care, not the FAQ search that `crmbot` imports.
"""

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import TypeAlias

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from care.scheduler import run_scheduler
from crm_store.db import create_engine_for
from crm_store.settings import get_care_settings

logger = logging.getLogger("crmbot")

EXIT_NOT_READY = 1
_NEEDED_TABLES = ("outbox", "care_locks", "care_channels")

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _care_commands(commands: SubParsers) -> SubParsers:
    """The sub-commands of `crmbot care`, creating `care` if `crmbot.care_cli` has not."""
    care = commands.choices.get("care")
    if care is None:
        care = commands.add_parser("care", help="主动关怀：生日、流失、跟进、投诉时限、补货提醒")
        return care.add_subparsers(required=True, metavar="CARE_COMMAND")
    # argparse has no public getter for a parser's sub-commands; the action is among its actions.
    for action in care._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return care.add_subparsers(required=True, metavar="CARE_COMMAND")


def add_care_process_commands(commands: SubParsers) -> None:
    run = _care_commands(commands).add_parser(
        "run",
        help="持续运行关怀调度器：定时计算并发送到期的关怀消息（crmbot up 会自动启动；同一数据库只运行一个）",
    )
    run.set_defaults(handler=_run)


def _store_ready() -> bool:
    engine = create_engine_for()
    try:
        tables = set(inspect(engine).get_table_names())
    except SQLAlchemyError as exc:
        logger.error("无法连接 CRM 数据库（%s）", type(exc).__name__)
        return False
    finally:
        engine.dispose()
    missing = [name for name in _NEEDED_TABLES if name not in tables]
    if missing:
        logger.error("数据库还没有主动关怀所需的表，请先运行 crmbot migrate")
        return False
    return True


def _run(_: argparse.Namespace) -> int:
    if not _store_ready():
        return EXIT_NOT_READY
    # APScheduler says at INFO level every time a job starts and ends; our jobs log their result.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("收到停止信号（%s），关怀调度器正在停止…", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    engine = create_engine_for()
    try:
        run_scheduler(engine, get_care_settings(), stop=stop)
    finally:
        engine.dispose()
    return 0


def main() -> int:
    """`crmbot care run` without the rest of `crmbot` (what `crmbot up` starts)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s crmbot | %(message)s", datefmt="%H:%M:%S")
    try:
        return _run(argparse.Namespace())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
