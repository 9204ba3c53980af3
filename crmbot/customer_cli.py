"""`crmbot customer show ID --as EMPLOYEE_ID [--json]`: the customer 360 view, as that employee sees it.

The view is read through the same service as the chat and the API (`crm_store.customer360`), so
the scope, the masking of phone and e-mail and the audit row are the employee's: the command is
audited as `--as`. A customer outside their scope, or one that does not exist, prints one clear
Chinese sentence on stderr and exits with 1. `--json` prints `CustomerView.to_json()` on one line,
the body of `GET /api/customers/{id}`.
"""

import argparse
import json
import logging
import sys
from typing import Final

from sqlalchemy import Engine

from crm_store import clock
from crm_store.access import actor_for
from crm_store.customer360 import CustomerView, customer_view
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import Forbidden, NotFound
from crm_store.formatting import cn_date
from crm_store.staff_formatting import churn_percent, rfm_label
from crmbot.preparation import prepare_store

logger = logging.getLogger("crmbot")

EXIT_FAILED: Final = 1
NONE: Final = "无"


def add_customer_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    customer = commands.add_parser("customer", help="客户 360 视图（按员工的权限范围）")
    customer_commands = customer.add_subparsers(required=True, metavar="CUSTOMER_COMMAND")
    show = customer_commands.add_parser("show", help="以某位员工的身份查看客户 360 视图（记入审计日志）")
    show.add_argument("customer_id", metavar="ID", help="客户编号，例如 C0001")
    show.add_argument(
        "--as", dest="employee_id", required=True, metavar="EMPLOYEE_ID", help="以哪位员工的身份查看"
    )
    show.add_argument("--json", action="store_true", help="输出 JSON（与 GET /api/customers/{id} 相同）")
    show.set_defaults(handler=_show)


def _store_engine() -> Engine:
    # The embedded default is the demo company: an empty store gets it, as with `crmbot up`.
    engine = create_engine_for()
    prepare_store(engine, load_demo=True)
    return engine


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    return EXIT_FAILED


def _show(args: argparse.Namespace) -> int:
    customer_id = str(args.customer_id).strip().upper()
    employee_id = str(args.employee_id).strip().upper()
    engine = _store_engine()
    try:
        with make_session_factory(engine)() as session:
            try:
                actor = actor_for(session, employee_id)
            except NotFound:
                return _fail(f"员工 {employee_id} 不存在。")
            try:
                view = customer_view(session, actor, customer_id, today=clock.today())
            except NotFound:
                return _fail(f"找不到客户 {customer_id}，或该客户不在 {employee_id} 的权限范围内。")
            except Forbidden:
                return _fail(f"{employee_id} 不是可以查看客户档案的员工账号。")
            session.commit()  # the audit row of the view
    finally:
        engine.dispose()
    if args.json:
        sys.stdout.write(json.dumps(view.to_json(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(view) + "\n")
    return 0


def _money(amount: float) -> str:
    return f"¥{amount:,.2f}"


def render(view: CustomerView) -> str:
    """The 360 view as readable Chinese lines, one section after another."""
    today = clock.today()
    who = view.name + (f"（{view.company}）" if view.company else "")
    lines = [
        f"客户 {view.customer_id}：{who}",
        f"类型：{view.type}　性别：{view.gender or NONE}　城市：{view.city or NONE}（{view.region or NONE}）",
        f"负责人：{view.owner_name or NONE}　偏好渠道：{view.channel_pref or NONE}"
        + ("　已退订营销消息" if view.opt_out else ""),
        f"电话：{view.phone or NONE}　邮箱：{view.email or NONE}",
        f"价值等级：{view.value_tier}　生命周期：{view.lifecycle}",
        f"价值评分：{rfm_label(view)}　客户终身价值：{_money(float(view.clv))}"
        f"　流失风险：{churn_percent(view.churn_risk)}",
        f"累计消费：{_money(float(view.total_spend))}，共 {view.order_count} 笔有效订单",
    ]
    if view.last_order_date is not None:
        lines.append(
            f"最近下单：{cn_date(view.last_order_date, today=today)}，距今 {view.days_since_last_order} 天"
        )
    lines.append("最近订单：" + ("" if view.recent_orders else NONE))
    for order in view.recent_orders:
        items = "、".join(order.items) or NONE
        lines.append(
            f"  · {order.order_id}　{order.order_date:%Y-%m-%d}　{order.status}"
            f"　{_money(float(order.amount))}　{items}"
        )
    lines.append("未结工单：" + ("" if view.open_tickets else NONE))
    for ticket in view.open_tickets:
        lines.append(
            f"  · {ticket.ticket_id}（{ticket.category or '其他'}，{ticket.priority}）"
            f"{ticket.status}：{ticket.summary}"
        )
    contact = view.last_contact
    if contact is None:
        lines.append(f"最近联系：{NONE}")
    else:
        lines.append(
            f"最近联系：{cn_date(contact.occurred_at, today=today)} {contact.kind}（{contact.employee_name}）"
            f"{contact.summary}"
        )
        next_date = cn_date(contact.next_date, today=today) if contact.next_date else "未定"
        lines.append(f"下一步：{contact.next_step or NONE}（{next_date}）")
    lines.append("进行中的商机：" + ("" if view.open_opportunities else NONE))
    for o in view.open_opportunities:
        lines.append(
            f"  · {o.opportunity_id} {o.name}　{o.stage}（{o.probability}%）"
            f"　金额 {_money(float(o.amount))}　加权 {_money(float(o.weighted_amount))}"
        )
    lines.append("偏好：" + ("；".join(view.preferences) or NONE))
    lines.append(f"备注：{view.notes or NONE}")
    if view.next_birthday is not None:
        lines.append(f"下次生日：{cn_date(view.next_birthday, today=today)}，还有 {view.days_to_birthday} 天")
    else:
        lines.append(f"下次生日：{NONE}")
    return "\n".join(lines)
