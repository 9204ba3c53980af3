"""`crmbot analytics refresh`: every customer's value and risk recomputed now (the nightly job on demand).

    crmbot analytics refresh [--today DATE] [--json]

Writes every customer's row of `customer_scores` (RFM, value tier, lifecycle, CLV, churn risk; the
formulas are in docs/analytics.md) as of `--today`, or the CRM clock's day (`CRM_TODAY` pins it).
The store is `CRM_DATABASE_URL`, migrated first; nothing is imported. Progress goes to the log;
the summary counts customers per value tier and lifecycle, `--json` prints it as
`{"today": ..., "customers": N, "value_tiers": {...}, "lifecycles": {...}, "seconds": ...}`.
"""

import argparse
import json
import logging
import sys
import time
from datetime import date
from typing import Any

from sqlalchemy import func, select

from crm_store import clock
from crm_store.analytics.customer_value import LIFECYCLE_STATUSES, refresh_scores
from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import CustomerScore
from crm_store.vocab import VALUE_TIERS
from crmbot.preparation import prepare_store

logger = logging.getLogger("crmbot")


def add_analytics_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    analytics = commands.add_parser(
        "analytics", help="客户价值分析：RFM、价值等级、生命周期、终身价值和流失风险"
    )
    analytics_commands = analytics.add_subparsers(required=True, metavar="ANALYTICS_COMMAND")
    refresh = analytics_commands.add_parser(
        "refresh", help="立即重算每位客户的价值与风险评分（关怀调度器每晚自动重算）"
    )
    refresh.add_argument("--today", type=date.fromisoformat, metavar="DATE", help="按这一天计算（默认今天）")
    refresh.add_argument("--json", action="store_true", help="输出 JSON")
    refresh.set_defaults(handler=_refresh)


def _refresh(args: argparse.Namespace) -> int:
    today: date = args.today or clock.today()
    engine = create_engine_for()
    started = time.monotonic()
    try:
        prepare_store(engine, load_demo=False)
        logger.info("正在重算客户价值评分（截至 %s）…", today.isoformat())
        with make_session_factory(engine).begin() as session:
            count = refresh_scores(
                session, today=today, progress=lambda done: logger.info("已计算 %d 位客户", done)
            )
            tiers = dict(
                session.execute(
                    select(CustomerScore.value_tier, func.count()).group_by(CustomerScore.value_tier)
                ).all()
            )
            lifecycles = dict(
                session.execute(
                    select(CustomerScore.lifecycle, func.count()).group_by(CustomerScore.lifecycle)
                ).all()
            )
    finally:
        engine.dispose()
    summary: dict[str, Any] = {
        "today": today.isoformat(),
        "customers": count,
        "value_tiers": {tier: int(tiers.get(tier, 0)) for tier in VALUE_TIERS},
        "lifecycles": {status: int(lifecycles.get(status, 0)) for status in LIFECYCLE_STATUSES},
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return 0
    lines = [
        f"已重算 {count} 位客户的价值与风险评分（截至 {today.isoformat()}，用时 {summary['seconds']} 秒）",
        "价值等级：" + "，".join(f"{tier} {n} 位" for tier, n in summary["value_tiers"].items()),
        "生命周期：" + "，".join(f"{status} {n} 位" for status, n in summary["lifecycles"].items()),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
