"""`crmbot care run-once|status|resume`: proactive care by hand (the scheduler runs the same pass).

    crmbot care run-once [--today DATE | --now DATETIME] [--dry-run] [--json]
    crmbot care status [--json]
    crmbot care resume CHANNEL

`--today 2026-11-23` means 10:00 that day in Beijing; `--now 2026-11-23T22:30` any moment (Beijing
time unless an offset is given); neither: the CRM clock (`CRM_TODAY` pins its day). The store is
`CRM_DATABASE_URL`, migrated first; nothing is imported. `--json` prints
`{"sent": [...], "deferred": [...], "skipped": [...]}`.
"""

import argparse
import json
import logging
from datetime import date, datetime

from care.run import CareItem, CareReport, run_once, today_at_ten
from crm_store import clock
from crm_store.access import Actor
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import Invalid
from crm_store.outbox import care_status, resume_channel
from crmbot.preparation import prepare_store

logger = logging.getLogger("crmbot")

EXIT_FAILED = 1

_CLI_ACTOR = Actor(role="admin", employee_id=None, name="crmbot")
"""Whoever runs the command on the server: audited as an admin without an employee id."""


def add_care_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    care = commands.add_parser("care", help="主动关怀：生日、久未下单、跟进、投诉时限和补货提醒")
    care_commands = care.add_subparsers(required=True, metavar="CARE_COMMAND")

    run = care_commands.add_parser("run-once", help="计算并发送当前到期的关怀消息（重复运行不会重复发送）")
    when = run.add_mutually_exclusive_group()
    when.add_argument("--today", type=date.fromisoformat, metavar="DATE", help="按这一天上午 10:00 运行")
    when.add_argument(
        "--now", type=datetime.fromisoformat, metavar="DATETIME", help="按这一时刻运行（北京时间）"
    )
    run.add_argument("--dry-run", action="store_true", help="只计算，不写入、不发送")
    run.add_argument("--json", action="store_true", help="输出 JSON")
    run.set_defaults(handler=_run_once)

    status = care_commands.add_parser("status", help="待发送、已发送、失败的消息数和暂停的渠道")
    status.add_argument("--json", action="store_true", help="输出 JSON")
    status.set_defaults(handler=_status)

    resume = care_commands.add_parser("resume", help="恢复一个因连续失败而暂停的渠道")
    resume.add_argument("channel", help="渠道：staff_inbox、web、email、sms、wechat")
    resume.set_defaults(handler=_resume)


def _moment(args: argparse.Namespace) -> datetime:
    if args.today is not None:
        return today_at_ten(args.today)
    if args.now is not None:
        moment: datetime = args.now
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=clock.TZ)
    return clock.now()


def _run_once(args: argparse.Namespace) -> int:
    engine = create_engine_for()
    try:
        prepare_store(engine, load_demo=False)
        report = run_once(make_session_factory(engine), now=_moment(args), dry_run=args.dry_run)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        _print_report(report, dry_run=args.dry_run)
    return 0


_REASONS = {
    "opt_out": "客户已退订",
    "no_address": "没有联系方式",
    "quiet_hours": "免打扰时段，早上再发",
    "failed": "多次发送失败",
}


def _line(item: CareItem) -> str:
    who = item.employee_id if item.audience == "staff" else item.customer_id
    reason = f"（{_REASONS.get(item.reason, item.reason)}）" if item.reason else ""
    return f"  [{item.rule}] → {who} · {item.channel}{reason}：{item.text}"


def _print_report(report: CareReport, *, dry_run: bool) -> None:
    sent_label = "将发送" if dry_run else "已发送"
    for label, items in ((sent_label, report.sent), ("推迟", report.deferred), ("跳过", report.skipped)):
        print(f"{label} {len(items)} 条")
        for item in items:
            print(_line(item))


def _status(args: argparse.Namespace) -> int:
    engine = create_engine_for()
    try:
        prepare_store(engine, load_demo=False)
        with make_session_factory(engine)() as session:
            status = care_status(session)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
        return 0
    print(
        f"待发送 {status['pending']}，推迟 {status['deferred']}，发送中 {status['sending']}，"
        f"已发送 {status['sent']}，失败 {status['failed']}，跳过 {status['skipped']}"
    )
    for channel in status["channels"]:
        state = "已暂停" if channel["paused"] else "正常"
        error = f"，最近错误：{channel['last_error']}" if channel["last_error"] else ""
        print(f"  {channel['channel']}：{state}，连续失败 {channel['consecutive_failures']} 次{error}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    engine = create_engine_for()
    try:
        prepare_store(engine, load_demo=False)
        with make_session_factory(engine).begin() as session:
            resumed = resume_channel(session, args.channel, actor=_CLI_ACTOR)
    except Invalid:
        logger.error("没有这个渠道：%s", args.channel)
        return EXIT_FAILED
    finally:
        engine.dispose()
    print(f"渠道 {args.channel} 已恢复" if resumed else f"渠道 {args.channel} 没有暂停")
    return 0
