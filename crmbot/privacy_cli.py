"""`crmbot privacy export|erase`: a customer's personal data on request (PIPL, docs/privacy.md).

    crmbot privacy export CUSTOMER_ID [--json]   # everything held about the customer
    crmbot privacy erase CUSTOMER_ID [--yes]     # asks first unless --yes

Runs as `crm_store.accounts.OPERATOR`: whoever runs `crmbot` on the server holds the database
already. Both commands read the CRM store (`CRM_DATABASE_URL`, migrated first; nothing is
imported) and Rasa's tracker store (`CRM_TRACKER_URL`, or beside the store), and are audited. The
export's `--json` is the body of `GET /api/admin/customers/{id}/personal-data`; without it, a
summary of what is held. An unknown id prints one Chinese sentence on stderr and exits with 1; so
does an erasure that was not confirmed.
"""

import argparse
import json
import logging
import sys
from typing import Any, Final

from sqlalchemy import Engine

from crm_store.accounts import OPERATOR
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import NotFound
from crm_store.models import Customer
from crm_store.personal_data import ErasureReport, erase_customer, export_customer, tracker_store
from crm_store.privacy import mask_name
from crmbot.confirm import confirmed
from crmbot.preparation import prepare_store

logger = logging.getLogger("crmbot")

EXIT_FAILED: Final = 1

SECTIONS: Final = (
    ("orders", "订单", "笔"),
    ("tickets", "工单", "张"),
    ("interactions", "拜访和沟通记录", "条"),
    ("opportunities", "商机", "个"),
    ("tasks", "待办", "条"),
    ("outbox", "发出的消息", "条"),
    ("handoff_cases", "转人工记录", "个"),
    ("wechat_links", "微信绑定", "个"),
    ("faq_votes", "FAQ 评价", "条"),
    ("unanswered_questions", "未解答的问题", "个"),
    ("conversations", "对话", "段"),
)
"""The sections of an export, in the order a person reads them: key, name, measure word."""


def add_privacy_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    privacy = commands.add_parser("privacy", help="客户个人信息：按要求导出或删除（个人信息保护法）")
    privacy_commands = privacy.add_subparsers(required=True, metavar="PRIVACY_COMMAND")

    export = privacy_commands.add_parser("export", help="导出我们保存的某位客户的全部信息（记入审计日志）")
    export.add_argument("customer_id", metavar="CUSTOMER_ID", help="客户编号，例如 C0001")
    export.add_argument(
        "--json",
        action="store_true",
        help="输出 JSON（与 GET /api/admin/customers/{id}/personal-data 相同）",
    )
    export.set_defaults(handler=_export)

    erase = privacy_commands.add_parser(
        "erase", help="删除某位客户的个人信息和对话内容（订单金额和日期保留用于销售统计；记入审计日志）"
    )
    erase.add_argument("customer_id", metavar="CUSTOMER_ID", help="客户编号，例如 C0058")
    erase.add_argument("--yes", action="store_true", help="不询问，直接删除")
    erase.set_defaults(handler=_erase)


def _store_engine() -> Engine:
    engine = create_engine_for()
    prepare_store(engine, load_demo=False)
    return engine


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    return EXIT_FAILED


def _export(args: argparse.Namespace) -> int:
    customer_id = str(args.customer_id).strip().upper()
    engine, tracker = _store_engine(), tracker_store()
    try:
        with make_session_factory(engine)() as session:
            try:
                data = export_customer(session, OPERATOR, customer_id, tracker=tracker)
            except NotFound:
                return _fail(f"找不到客户 {customer_id}。")
            session.commit()  # the audit row of the export
    finally:
        engine.dispose()
        if tracker is not None:
            tracker.dispose()
    if args.json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(summary(data) + "\n")
    return 0


def summary(data: dict[str, Any]) -> str:
    """What an export holds, in a person's words; the data itself is in `--json`."""
    profile = data["profile"]
    lines = [f"客户 {data['customer_id']}（{mask_name(profile.get('name'))}）保存的信息："]
    lines += [f"  · {name}：{len(data[key])} {unit}" for key, name, unit in SECTIONS]
    lines.append("加 --json 输出全部内容。")
    return "\n".join(lines)


def _confirmed(customer_id: str, name: str) -> bool:
    lines = [
        f"将删除客户 {customer_id}（{mask_name(name)}）的个人信息：姓名、电话、邮箱、生日、备注和偏好，",
        "工单、拜访记录、消息和转人工记录中的文字，以及对话记录的内容；订单金额和日期保留用于销售统计。",
        "删除后无法恢复。",
    ]
    return confirmed(lines, "确定要删除吗？[y/N] ")


def _erase(args: argparse.Namespace) -> int:
    customer_id = str(args.customer_id).strip().upper()
    engine = _store_engine()
    tracker: Engine | None = None
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                return _fail(f"找不到客户 {customer_id}。")
            name = customer.name
        if not args.yes and not _confirmed(customer_id, name):
            logger.info("已取消，数据没有改动")
            return EXIT_FAILED
        tracker = tracker_store()
        with sessions.begin() as session:
            report = erase_customer(session, OPERATOR, customer_id, tracker=tracker)
    finally:
        engine.dispose()
        if tracker is not None:
            tracker.dispose()
    sys.stdout.write(done(report) + "\n")
    return 0


def done(report: ErasureReport) -> str:
    """The erasure's outcome in a person's words."""
    if report.already_erased:
        head = f"客户 {report.customer_id} 的个人信息此前已删除，这次又检查了一遍。"
    else:
        head = f"已删除客户 {report.customer_id} 的个人信息。"
    return (
        f"{head}对话 {report.conversations} 段（{report.tracker_events} 条记录）、"
        f"工单 {report.tickets} 张、拜访记录 {report.interactions} 条、消息 {report.outbox_messages} 条、"
        f"转人工记录 {report.handoff_cases} 个、微信绑定 {report.wechat_links} 个；"
        f"其他记录中提到此客户的 {report.masked_elsewhere} 处已遮盖。订单金额和日期已保留。"
    )
