"""`crmbot backup PATH` and `crmbot restore PATH [--yes]`: the CRM store and the conversations in one file.

    crmbot backup PATH            # PATH a new file, or a directory (named by the time)
    crmbot restore PATH [--yes]   # asks first unless --yes

Both cover `CRM_DATABASE_URL` and, when it is a database of its own, the tracker store (the
SQLite default's `var/tracker.db`, or `CRM_TRACKER_URL`); both run while the assistant runs
(`crm_store.backup` says how). Restore checks the whole file against the databases configured now
before it asks, shows what the backup holds, and migrates a backup of an older schema afterwards.
Each is audited as the operator. A refusal or a failure is one Chinese sentence on the log and
exit code 1; nothing was changed then. Long steps report their progress (`crmbot.steps`).
"""

import argparse
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy.exc import OperationalError

from crm_store import backup
from crm_store.accounts import OPERATOR
from crm_store.audit import audit
from crm_store.clock import TZ
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import CrmError
from crmbot.confirm import confirmed
from crmbot.preparation import prepare_store
from crmbot.steps import REPORT_EVERY_S, Progress, duration, progress_line

logger = logging.getLogger("crmbot")

EXIT_FAILED: Final = 1
PART_NAMES: Final = {backup.CRM: "CRM 数据库", backup.TRACKER: "对话记录（tracker）"}
ENGINE_NAMES: Final = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
# What the confirmation shows of a backup: the tables a person recognises, with their counting words.
SHOWN_TABLES: Final = (
    ("customers", "客户", "位"),
    ("orders", "订单", "笔"),
    ("tickets", "工单", "张"),
    ("interactions", "跟进记录", "条"),
    ("faqs", "FAQ", "条"),
    ("events", "对话事件", "条"),
)


def add_backup_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    backup_cmd = commands.add_parser(
        "backup", help="备份 CRM 数据库和对话记录到一个文件（助手运行时也可以备份）"
    )
    backup_cmd.add_argument(
        "path", type=Path, metavar="PATH", help="备份文件（不能已存在），或一个目录（文件名按时间生成）"
    )
    backup_cmd.set_defaults(handler=_backup)

    restore_cmd = commands.add_parser("restore", help="从 crmbot backup 的备份文件恢复（当前数据会被替换）")
    restore_cmd.add_argument("path", type=Path, metavar="PATH", help="备份文件")
    restore_cmd.add_argument("--yes", action="store_true", help="不询问，直接恢复")
    restore_cmd.set_defaults(handler=_restore)


class _Fraction(Progress):
    """A step whose share done is reported to it directly."""

    def __init__(self) -> None:
        super().__init__(usual_s=0.0)
        self.done: float | None = None

    def fraction(self) -> float | None:
        return self.done


class _Reporter:
    """Turns `crm_store.backup`'s progress calls into the console lines of every long step."""

    def __init__(self, verb: str) -> None:
        self._verb = verb
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._reported: dict[str, float] = {}
        self._progress: dict[str, _Fraction] = {}
        self._finished: set[str] = set()

    def __call__(self, part: str, done: float) -> None:
        name = PART_NAMES.get(part, part)
        label = f"{self._verb} {name}" if name[0].isascii() else f"{self._verb}{name}"
        now = time.monotonic()
        with self._lock:
            if part not in self._started:
                self._started[part] = self._reported[part] = now
                self._progress[part] = _Fraction()
                logger.info("%s：开始", label)
            progress = self._progress[part]
            progress.done = done
            elapsed = now - self._started[part]
            if done >= 1.0:
                if part not in self._finished:  # once, though the last step and the end both say 1
                    self._finished.add(part)
                    logger.info("%s：完成，用时 %s", label, duration(elapsed))
            elif now - self._reported[part] >= REPORT_EVERY_S:
                self._reported[part] = now
                logger.info(progress_line(label, progress, elapsed))


def _fail(message: str) -> int:
    logger.error(message)
    return EXIT_FAILED


def _backup(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.is_dir():
        path = path / f"xiaozhushou-{datetime.now(TZ):%Y%m%d-%H%M%S}.zip"
    started = time.monotonic()
    try:
        to_save = backup.targets()
        manifest = backup.back_up(path, to_save, progress=_Reporter("备份"))
    except CrmError as error:
        return _fail(explain(error) + "没有写出备份文件。")
    except OperationalError:
        return _fail(UNREACHABLE + "没有写出备份文件。")
    crm = manifest.part(backup.CRM)
    assert crm is not None  # back_up always writes it; programming error otherwise
    engine = create_engine_for()
    try:
        with make_session_factory(engine).begin() as session:
            audit(
                session,
                OPERATOR,
                "backup_store",
                entity="store",
                entity_id=None,
                file=path.name,
                parts=[info.part for info in manifest.parts],
                revision=crm.revision,
            )
    finally:
        engine.dispose()
    size_mb = path.stat().st_size / 1_000_000
    logger.info(
        "备份完成：%s（%.1f MB，用时 %s）。内容：%s",
        path,
        size_mb,
        duration(time.monotonic() - started),
        contents(manifest),
    )
    if manifest.tracker == "none":
        logger.info("还没有对话记录（%s 不存在），备份中只有 CRM 数据库", to_save[-1].url.database)
    return 0


def _restore(args: argparse.Namespace) -> int:
    path: Path = args.path
    logger.info("正在检查备份文件 %s …", path)
    try:
        plan = backup.plan_restore(path, backup.targets())
    except CrmError as error:
        return _fail(explain(error) + "数据没有改动。")
    except OperationalError:
        return _fail(UNREACHABLE + "数据没有改动。")
    if not args.yes and not _confirmed(plan):
        logger.info("已取消，数据没有改动")
        return EXIT_FAILED
    try:
        backup.restore(plan, progress=_Reporter("恢复"))
    except CrmError as error:
        return _fail(explain(error) + "这部分数据保持恢复前的样子。")
    except OperationalError:
        return _fail(UNREACHABLE + "这部分数据保持恢复前的样子。")
    crm = plan.manifest.part(backup.CRM)
    assert crm is not None  # read_manifest refuses a backup without it; programming error otherwise
    engine = create_engine_for()
    try:
        if plan.needs_migration:
            prepare_store(engine, load_demo=False)
            logger.info("备份的数据库结构（版本 %s）较旧，已升级到当前版本", crm.revision)
        with make_session_factory(engine).begin() as session:
            audit(
                session,
                OPERATOR,
                "restore_store",
                entity="store",
                entity_id=None,
                file=path.name,
                backup_created_at=plan.manifest.created_at,
                parts=[info.part for info in plan.manifest.parts],
                revision=crm.revision,
                migrated=plan.needs_migration,
            )
    finally:
        engine.dispose()
    logger.info(
        "恢复完成：数据已回到 %s 备份时的状态", f"{plan.manifest.created_at.astimezone(TZ):%Y-%m-%d %H:%M}"
    )
    if plan.kept_tracker:
        logger.info("备份中没有对话记录，现有的对话记录保持不变")
    return 0


def _confirmed(plan: backup.RestorePlan) -> bool:
    lines = [
        f"备份文件：{plan.path}（{plan.manifest.created_at.astimezone(TZ):%Y-%m-%d %H:%M} 备份）",
        f"备份内容：{contents(plan.manifest)}",
        "将被替换的数据库：",
        *(f"  · {PART_NAMES[target.part]}：{where(target)}" for target in plan.targets),
        "恢复后，这些数据库中备份之后的所有改动都会丢失。",
    ]
    return confirmed(lines, "确定要恢复吗？[y/N] ")


def contents(manifest: backup.Manifest) -> str:
    """What a backup holds, in a person's words: "客户 60 位、订单 254 笔…"."""
    counts: dict[str, int] = {}
    for info in manifest.parts:
        counts |= info.tables
    shown = [f"{name} {counts[table]} {unit}" for table, name, unit in SHOWN_TABLES if table in counts]
    if manifest.tracker == "none":
        shown.append("没有对话记录")
    return "、".join(shown)


def where(target: backup.Target) -> str:
    """A database as the operator knows it, never with its password."""
    if target.engine == "sqlite":
        return f"SQLite 文件 {target.sqlite_file}"
    url = target.url
    return f"PostgreSQL {url.host or 'localhost'}:{url.port or 5432}/{url.database}"


UNREACHABLE: Final = "连接不上数据库，请检查 CRM_DATABASE_URL（及 CRM_TRACKER_URL）和数据库服务是否在运行。"


def explain(error: CrmError) -> str:
    """One Chinese sentence for each refusal of `crm_store.backup`."""
    data = error.data
    part = PART_NAMES.get(str(data.get("part")), "数据库")
    match error.code:
        case "backup_file_exists":
            return f"文件 {data['file']} 已存在：请换一个文件名，或给出一个目录（文件名按时间生成）。"
        case "backup_store_not_created":
            return "CRM 数据库还没有建表，没有可备份的数据（先运行 crmbot migrate 或 crmbot import）。"
        case "backup_database_missing":
            return f"找不到{part}的数据库文件。"
        case "backup_memory_database":
            return "内存中的 SQLite 数据库无法备份或恢复。"
        case "backup_file_missing":
            return f"找不到备份文件 {data['file']}。"
        case "not_a_backup":
            return f"{data['file']} 不是小助手的备份文件（应是 crmbot backup 生成的 .zip 文件）。"
        case "backup_format_too_new":
            return f"{data['file']} 由更新版本的小助手生成，请先升级小助手再恢复。"
        case "backup_engine_mismatch":
            backup_engine = ENGINE_NAMES.get(data["backup"], data["backup"])
            current = ENGINE_NAMES.get(data["current"], data["current"])
            return (
                f"备份中的{part}是 {backup_engine} 数据库，当前配置的是 {current}，不能跨数据库类型恢复；"
                f"请先把配置指向一个 {backup_engine} 数据库。"
            )
        case "backup_tracker_layout":
            if data["backup"] == "in_crm":
                return (
                    "备份中的对话记录在 CRM 数据库里，而当前配置的对话记录是单独的数据库（CRM_TRACKER_URL）。"
                )
            return (
                "备份中的对话记录是单独的数据库，而当前配置的对话记录在 CRM 数据库里；"
                "请先设置 CRM_TRACKER_URL。"
            )
        case "backup_schema_too_new":
            return (
                f"备份的数据库结构（版本 {data['revision']}）比当前程序（版本 {data['head']}）新，"
                "请先把小助手升级到备份时的版本或更新的版本。"
            )
        case "backup_server_too_old":
            return (
                f"备份来自 PostgreSQL {data['backup_major']}，"
                f"不能恢复到更旧的 PostgreSQL {data['server_major']}。"
            )
        case "pg_tool_missing":
            found = f"，本机只找到 {data['found_major']} 版" if data.get("found_major") else ""
            need = data["need_major"]
            return (
                f"找不到 {need} 版或更新的 PostgreSQL 客户端工具 {data['tool']}{found}。请安装与数据库服务器"
                f"相同版本的客户端（例如 apt install postgresql-client-{need}），或把它所在的目录加入 PATH。"
            )
        case "backup_tool_failed":
            reason = f"：{data['reason']}" if data.get("reason") else ""
            return f"{part}：{data['tool']} 执行失败{reason}。"
        case "backup_damaged":
            return f"备份文件已损坏（{part}校验失败）。"
        case "database_busy":
            return f"{part}正被其他连接占用（锁住），请稍后再试，或先停止小助手。"
        case _:
            reason = f"：{data['reason']}" if data.get("reason") else ""
            return f"{part}操作失败{reason}。"
