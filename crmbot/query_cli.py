"""`crmbot query` and `crmbot query-eval`: managers' questions from the command line (issue 18, 7).

    crmbot query "上个月华东区销售额最高的五个客户" --as E01 [--today 2026-11-23] [--json]
    crmbot query-eval FILE [--json] [--verbose]

`query` parses the question (knowledge.manager_query) and answers it over the asker's scope
(crm_store.analytics.query.run_query) on the store of `CRM_DATABASE_URL` (the demo company when
empty, as `crmbot up`); the day is `--today`, else the CRM clock (`CRM_TODAY`). A question outside
the asker's scope, or asked as someone who is not an employee, exits 1 with a polite refusal and no
figure; a question asked back or not supported exits 2. `--json` prints
`{"spec": …, "columns": […], "rows": […], "total": …, "answer": "…"}`.

`query-eval` scores the parser on a JSON-lines file, one question a line:
`{"question", "today", "as", "previous": spec JSON or null, "expected": spec JSON (label ignored)
| {"clarify": true} | {"unsupported": true}}`. Names come from the demo company, loaded into a
scratch SQLite store. Each slot is compared exactly: metric, group_by (as a set), filters (each
dimension's values as a set), period (start and end), top_n with order; overall is all of them.
A question expected to be asked back or refused counts in overall only (as right when the parser
did so).
"""

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from crm_store import clock
from crm_store.access import Actor, actor_for
from crm_store.analytics.query import format_answer, run_query
from crm_store.analytics.spec import QuerySpec
from crm_store.analytics.vocabulary import Vocabulary, load_vocabulary
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import Forbidden, Invalid, NotFound
from crm_store.models import Employee
from crmbot.preparation import prepare_store
from knowledge.manager_query import Clarify, Parsed, ParseOutcome, Unsupported, parse_question
from knowledge.manager_query.texts import render

__all__ = ["SLOTS", "EvalReport", "add_query_commands", "evaluate", "slots_of"]

logger = logging.getLogger("crmbot")

EXIT_REFUSED: Final = 1
EXIT_NOT_ANSWERED: Final = 2
SLOTS: Final = ("metric", "group_by", "filters", "period", "top_n")
_SLOT_LABELS: Final = {
    "metric": "指标",
    "group_by": "分组",
    "filters": "筛选",
    "period": "时间范围",
    "top_n": "前N与排序",
}


def add_query_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    query = commands.add_parser("query", help="用中文问经营数据：解析成查询并按提问人的权限范围回答")
    query.add_argument("question", help="问题，例如：上个月华东区销售额最高的五个客户")
    query.add_argument(
        "--as", dest="employee_id", required=True, metavar="EMPLOYEE_ID", help="以哪位员工的身份"
    )
    query.add_argument("--today", type=date.fromisoformat, metavar="DATE", help="按这一天回答（默认今天）")
    query.add_argument("--json", action="store_true", help="输出 JSON：查询规格和结果行")
    query.set_defaults(handler=_query)

    evaluate_cmd = commands.add_parser("query-eval", help="在 JSON Lines 问题集上评估经营问题的解析准确率")
    evaluate_cmd.add_argument("file", type=Path, help="每行一个问题及其期望的查询规格")
    evaluate_cmd.add_argument("--json", action="store_true", help="输出 JSON")
    evaluate_cmd.add_argument("--verbose", action="store_true", help="列出解析错的问题（期望与实际）")
    evaluate_cmd.set_defaults(handler=_query_eval)


# -- crmbot query ------------------------------------------------------------------------------------


def _say(text: str, *, error: bool = False) -> None:
    """One line of the command's output (stdout; stderr for a refusal)."""
    stream = sys.stderr if error else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _refuse(key: str) -> int:
    _say(render(f"refusal.{key}"), error=True)
    return EXIT_REFUSED


def _query(args: argparse.Namespace) -> int:
    engine = create_engine_for()
    prepare_store(engine, load_demo=True)
    today: date = args.today or clock.today()
    try:
        with make_session_factory(engine)() as session:
            try:
                actor = actor_for(session, args.employee_id)
            except NotFound:
                return _refuse("not_staff")
            outcome = parse_question(
                args.question, vocabulary=load_vocabulary(session), today=today, asker=actor
            )
            if not isinstance(outcome, Parsed):
                _print_not_answered(outcome, as_json=args.json)
                return EXIT_NOT_ANSWERED
            try:
                result = run_query(session, outcome.spec, actor, today=today)
            except (Forbidden, NotFound) as error:
                return _refuse("not_staff" if error.code == "staff_only" else "out_of_scope")
            except Invalid as error:
                if error.code != "unsupported_combination":
                    raise
                _say(render("refusal.unsupported_combination"), error=True)
                return EXIT_NOT_ANSWERED
    finally:
        engine.dispose()

    answer = format_answer(result)
    if args.json:
        data = {
            "spec": outcome.spec.to_json(),
            "columns": list(result.columns),
            "rows": [[_plain(v) for v in row] for row in result.rows],
            "total": _plain(result.total),
            "answer": answer,
        }
        _say(json.dumps(data, ensure_ascii=False))
    else:
        _say(answer)
    return 0


def _print_not_answered(outcome: Clarify | Unsupported, *, as_json: bool) -> None:
    if isinstance(outcome, Clarify):
        if as_json:
            _say(
                json.dumps(
                    {"clarify": {"question": outcome.question, "options": list(outcome.options)}},
                    ensure_ascii=False,
                )
            )
        else:
            _say(outcome.question)
            for option in outcome.options:
                _say(f"  · {option}")
        return
    if as_json:
        _say(
            json.dumps(
                {"unsupported": {"reason": outcome.reason, "examples": list(outcome.examples)}},
                ensure_ascii=False,
            )
        )
    else:
        _say(outcome.reason)
        for example in outcome.examples:
            _say(f"  · {example}")


# -- crmbot query-eval -------------------------------------------------------------------------------


def slots_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec's JSON (to_json form, label ignored) as comparable slots."""
    period = spec.get("period")
    return {
        "metric": spec.get("metric"),
        "group_by": frozenset(spec.get("group_by") or ()),
        "filters": {key: frozenset(values) for key, values in (spec.get("filters") or {}).items() if values},
        "period": (period["start"], period["end"]) if period else None,
        "top_n": (spec.get("top_n"), spec.get("order") or "desc"),
    }


def _kind(outcome: ParseOutcome) -> str:
    return (
        "spec"
        if isinstance(outcome, Parsed)
        else "clarify"
        if isinstance(outcome, Clarify)
        else "unsupported"
    )


def _shown(outcome: ParseOutcome) -> Any:
    if isinstance(outcome, Parsed):
        return outcome.spec.to_json()
    if isinstance(outcome, Clarify):
        return {"clarify": outcome.question, "options": list(outcome.options)}
    return {"unsupported": outcome.reason}


@dataclass
class EvalReport:
    total: int = 0
    with_spec: int = 0
    right: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SLOTS, 0))
    overall: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "questions": self.total,
            "with_spec": self.with_spec,
            "slots": {slot: _ratio(self.right[slot], self.with_spec) for slot in SLOTS},
            "overall": _ratio(self.overall, self.total),
            "overall_right": self.overall,
            "misses": self.misses,
        }


def _ratio(right: int, total: int) -> float:
    return round(right / total, 4) if total else 0.0


def evaluate(
    lines: list[Mapping[str, Any]], vocabulary: Vocabulary, actors: Mapping[str, Actor]
) -> EvalReport:
    """Score the parser on evaluation items (the JSON lines of the file, already read)."""
    report = EvalReport()
    for item in lines:
        report.total += 1
        previous = QuerySpec.from_json(item["previous"]) if item.get("previous") else None
        outcome = parse_question(
            item["question"],
            vocabulary=vocabulary,
            today=date.fromisoformat(item["today"]),
            previous=previous,
            asker=actors.get(item.get("as") or ""),
        )
        expected = item["expected"]
        if expected.get("clarify") or expected.get("unsupported"):
            right = _kind(outcome) == ("clarify" if expected.get("clarify") else "unsupported")
        else:
            report.with_spec += 1
            want = slots_of(expected)
            got = slots_of(outcome.spec.to_json()) if isinstance(outcome, Parsed) else {}
            for slot in SLOTS:
                if isinstance(outcome, Parsed) and got[slot] == want[slot]:
                    report.right[slot] += 1
            right = isinstance(outcome, Parsed) and got == want
        if right:
            report.overall += 1
        else:
            report.misses.append({"question": item["question"], "expected": expected, "got": _shown(outcome)})
    return report


def _demo_names() -> tuple[Vocabulary, dict[str, Actor]]:
    with tempfile.TemporaryDirectory(prefix="crm-query-eval-") as scratch:
        engine = create_engine_for(f"sqlite:///{scratch}/crm.db")
        try:
            prepare_store(engine, load_demo=True)
            with make_session_factory(engine)() as session:
                vocabulary = load_vocabulary(session)
                ids = session.scalars(select(Employee.employee_id)).all()
                actors = {employee_id: actor_for(session, employee_id) for employee_id in ids}
        finally:
            engine.dispose()
    return vocabulary, actors


def _query_eval(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        logger.error("找不到文件：%s", path)
        return EXIT_REFUSED
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    vocabulary, actors = _demo_names()
    report = evaluate(lines, vocabulary, actors)
    if args.json:
        _say(json.dumps(report.to_json(), ensure_ascii=False))
        return 0
    table = Table(title=f"经营问题解析准确率（{report.total} 个问题，{report.with_spec} 个有期望规格）")
    table.add_column("槽位")
    table.add_column("正确", justify="right")
    table.add_column("总数", justify="right")
    table.add_column("准确率", justify="right")
    for slot in SLOTS:
        table.add_row(
            _SLOT_LABELS[slot],
            str(report.right[slot]),
            str(report.with_spec),
            f"{_ratio(report.right[slot], report.with_spec):.1%}",
        )
    table.add_row(
        "整体（全部槽位）",
        str(report.overall),
        str(report.total),
        f"{_ratio(report.overall, report.total):.1%}",
    )
    console = Console()
    console.print(table)
    if args.verbose:
        for miss in report.misses:
            console.print(f"[bold]{miss['question']}[/bold]", highlight=False)
            console.print(
                "  期望：" + json.dumps(miss["expected"], ensure_ascii=False), highlight=False, markup=False
            )
            console.print(
                "  实际：" + json.dumps(miss["got"], ensure_ascii=False), highlight=False, markup=False
            )
    return 0
