"""`crmbot user …`: staff sign-in accounts: set a password, link a WeCom member, list who can sign in.

Runs as `crm_store.accounts.OPERATOR`: whoever runs `crmbot` on the server holds the database
already, so they may set any employee's password and link any employee to a WeCom (企业微信) member
(`link-wecom EMPLOYEE_ID USERID`, `unlink-wecom EMPLOYEE_ID`; both audited), after which that
member's messages to the WeCom app are the employee's (api/channels/wecom.py).

Passwords are read from a prompt (twice, not echoed) or from standard input (`--password-stdin`,
one line), never from the command line, where the shell history and `ps` would keep them.
"""

import argparse
import getpass
import logging
import sys

from rich.console import Console
from rich.table import Table

from crm_store.accounts import OPERATOR, list_accounts, set_password
from crm_store.clock import TZ
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import Conflict, Invalid, NotFound
from crm_store.wecom_links import link_wecom, unlink_wecom, wecom_userids
from crmbot.preparation import prepare_store

logger = logging.getLogger("crmbot")

EXIT_FAILED = 1

ROLE_NAMES = {"sales": "销售", "manager": "经理", "service": "客服", "admin": "管理员"}


def add_user_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    user = commands.add_parser("user", help="员工登录账号：设置密码、关联企业微信、查看账号")
    user_commands = user.add_subparsers(required=True, metavar="USER_COMMAND")

    set_pw = user_commands.add_parser("set-password", help="为员工设置登录密码（至少 8 位），并解除锁定")
    set_pw.add_argument("employee_id", metavar="EMPLOYEE_ID", help="员工工号，例如 E03")
    set_pw.add_argument(
        "--password-stdin", action="store_true", help="从标准输入读取密码（一行），不交互提示"
    )
    set_pw.set_defaults(handler=_set_password)

    list_cmd = user_commands.add_parser(
        "list", help="列出员工账号：工号、姓名、角色、区域、是否已设密码、是否锁定、企业微信账号"
    )
    list_cmd.set_defaults(handler=_list)

    link = user_commands.add_parser(
        "link-wecom",
        help="把企业微信成员账号（UserID）关联到员工：此后该成员在企业微信应用中以该员工的身份使用小助手",
    )
    link.add_argument("employee_id", metavar="EMPLOYEE_ID", help="员工工号，例如 E03")
    link.add_argument("userid", metavar="USERID", help="企业微信通讯录中的成员账号（UserID），例如 LiuYang")
    link.set_defaults(handler=_link_wecom)

    unlink = user_commands.add_parser("unlink-wecom", help="解除员工与企业微信成员账号的关联")
    unlink.add_argument("employee_id", metavar="EMPLOYEE_ID", help="员工工号，例如 E03")
    unlink.set_defaults(handler=_unlink_wecom)


def _read_password(from_stdin: bool) -> str | None:
    """The new password, or None when the two prompts differ."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("新密码：")
    second = getpass.getpass("再输入一次：")
    if first != second:
        logger.error("两次输入的密码不一致，密码未修改")
        return None
    return first


def _set_password(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    if password is None:
        return EXIT_FAILED
    engine = create_engine_for()
    try:
        prepare_store(engine, load_demo=False)
        with make_session_factory(engine).begin() as session:
            set_password(session, args.employee_id, password, actor=OPERATOR)
    except NotFound:
        logger.error("找不到员工 %s", args.employee_id)
        return EXIT_FAILED
    except Invalid as exc:
        if exc.code == "password_too_short":
            logger.error("密码至少需要 %s 位，密码未修改", exc.data["min_chars"])
        else:
            logger.error("密码不能超过 %s 位，密码未修改", exc.data["max_chars"])
        return EXIT_FAILED
    finally:
        engine.dispose()
    logger.info("已为员工 %s 设置新密码（已解除锁定，旧的登录状态全部失效）", args.employee_id)
    return 0


def _link_wecom(args: argparse.Namespace) -> int:
    engine = create_engine_for()
    try:
        prepare_store(engine, load_demo=False)
        with make_session_factory(engine).begin() as session:
            changed = link_wecom(session, args.employee_id, args.userid, actor=OPERATOR)
    except NotFound:
        logger.error("找不到员工 %s", args.employee_id)
        return EXIT_FAILED
    except Invalid as exc:
        logger.error("企业微信账号不正确：不能为空或含空格，最多 %s 个字符", exc.data["max_length"])
        return EXIT_FAILED
    except Conflict as exc:
        holder = exc.data["employee_id"]
        logger.error("该企业微信账号已关联员工 %s，请先解除：crmbot user unlink-wecom %s", holder, holder)
        return EXIT_FAILED
    finally:
        engine.dispose()
    if changed:
        logger.info("已将企业微信账号关联到员工 %s", args.employee_id)
    else:
        logger.info("员工 %s 已关联该企业微信账号，无需修改", args.employee_id)
    return 0


def _unlink_wecom(args: argparse.Namespace) -> int:
    engine = create_engine_for()
    try:
        prepare_store(engine, load_demo=False)
        with make_session_factory(engine).begin() as session:
            changed = unlink_wecom(session, args.employee_id, actor=OPERATOR)
    except NotFound:
        logger.error("找不到员工 %s", args.employee_id)
        return EXIT_FAILED
    finally:
        engine.dispose()
    if changed:
        logger.info("已解除员工 %s 与企业微信账号的关联", args.employee_id)
    else:
        logger.info("员工 %s 没有关联企业微信账号，无需解除", args.employee_id)
    return 0


def _list(_: argparse.Namespace) -> int:
    engine = create_engine_for()
    try:
        prepare_store(engine, load_demo=False)
        with make_session_factory(engine)() as session:
            accounts = list_accounts(session)
            wecom = wecom_userids(session)
    finally:
        engine.dispose()
    table = Table(title=f"员工账号（{len(accounts)} 个）")
    for column in ("工号", "姓名", "角色", "区域", "已设密码", "锁定", "企业微信"):
        table.add_column(column)
    for account in accounts:
        locked = (
            f"锁定至 {account.locked_until.astimezone(TZ):%m-%d %H:%M}"
            if account.locked_until is not None
            else "否"
        )
        table.add_row(
            account.employee_id,
            account.name,
            ROLE_NAMES.get(account.role, account.role),
            account.region or "—",
            "是" if account.has_password else "否",
            locked,
            wecom.get(account.employee_id, "否"),
        )
    Console().print(table)
    return 0
