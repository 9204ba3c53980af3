"""`crmbot visit parse "句子" --as EMPLOYEE_ID [--json]`: a visit note's extraction, without saving.

It is how the extraction is evaluated (bench/visit_extraction.py runs the same function): the store
of `CRM_DATABASE_URL` (the demo company when empty, as `crmbot up`), the clock of `CRM_TODAY`, the
scope of the employee named. Loading is spaCy's blank Chinese pipeline and jieba (a few seconds);
no sentence encoder is loaded.
"""

import argparse
import json
import logging

from crm_store import clock
from crm_store.access import actor_for
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import NotFound
from crm_store.formatting import cn_date
from crmbot.preparation import prepare_store

logger = logging.getLogger("crmbot")

EXIT_FAILED = 1


def add_visit_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    visit = commands.add_parser("visit", help="拜访记录：从一句话中提取客户、方式、日期和下一步")
    visit_commands = visit.add_subparsers(required=True, metavar="VISIT_COMMAND")
    parse = visit_commands.add_parser("parse", help="提取一句拜访记录的内容（不保存）")
    parse.add_argument("text", help="拜访记录，例如：今天下午拜访了华峰科技的王芳，下周三把报价单发过去")
    parse.add_argument(
        "--as", dest="employee_id", required=True, metavar="EMPLOYEE_ID", help="以哪位员工的身份"
    )
    parse.add_argument("--json", action="store_true", help="输出 JSON")
    parse.set_defaults(handler=_parse)


def _parse(args: argparse.Namespace) -> int:
    from knowledge.visits import parse_visit  # spaCy and jieba load only for this command

    engine = create_engine_for()
    prepare_store(engine, load_demo=True)
    today = clock.today()
    try:
        with make_session_factory(engine)() as session:
            try:
                actor = actor_for(session, args.employee_id)
            except NotFound:
                logger.error("找不到员工：%s", args.employee_id)
                return EXIT_FAILED
            extraction = parse_visit(session, actor, args.text, today=today)
    finally:
        engine.dispose()

    if args.json:
        print(json.dumps(extraction.to_json(), ensure_ascii=False))
        return 0
    if extraction.customer_id is not None:
        customer = f"{extraction.customer_name}（{extraction.customer_id}）"
    elif extraction.candidates:
        shown = "、".join(
            f"{c.name}（{c.customer_id}{'，' + c.company if c.company else ''}）"
            for c in extraction.candidates
        )
        customer = f"不确定，可能是：{shown}"
    else:
        customer = "未识别（只在您负责的客户中查找）"
    lines = [
        f"客户：{customer}",
        f"方式：{extraction.kind or '未识别'}",
        f"日期：{cn_date(extraction.occurred_at, today=today)}",
        f"内容：{extraction.summary}",
        f"下一步：{extraction.next_step or '无'}",
        f"下次跟进：{cn_date(extraction.next_date, today=today) if extraction.next_date else '无'}",
    ]
    print("\n".join(lines))
    return 0
