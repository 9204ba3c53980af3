"""`crmbot faq …`: import, search, evaluate and tune the FAQ knowledge base."""

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import Engine

from crm_store import faqs as faq_store
from crm_store.db import create_engine_for, make_session_factory
from crm_store.errors import Invalid
from crm_store.importer import faq_reason
from crmbot.preparation import prepare_store
from knowledge.encoder import SentenceEncoder
from knowledge.errors import EncoderUnavailable, EvalSetError, TuningError
from knowledge.evaluation import evaluate, load_eval_set
from knowledge.service import KnowledgeService, index_config
from knowledge.settings import get_knowledge_settings

logger = logging.getLogger("crmbot")

EXIT_FAILED = 1
EXIT_ROWS_REJECTED = 2
_T = TypeVar("_T")


def add_faq_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    faq = commands.add_parser("faq", help="常见问题知识库：导入、检索、评测、领域微调")
    faq_commands = faq.add_subparsers(required=True, metavar="FAQ_COMMAND")

    import_cmd = faq_commands.add_parser(
        "import", help="导入 FAQ（faqs.csv 格式的 CSV，或 JSON），按 faq_id 更新或插入"
    )
    import_cmd.add_argument("file", type=Path)
    import_cmd.set_defaults(handler=_import)

    search = faq_commands.add_parser("search", help="检索一个问题，给出答复决定与候选 FAQ")
    search.add_argument("question")
    search.add_argument("--top-k", type=int, default=5, help="返回几条候选（默认 5）")
    search.add_argument("--json", action="store_true", help="输出 JSON")
    search.set_defaults(handler=_search)

    eval_cmd = faq_commands.add_parser(
        "eval", help="在评测集（格式见 docs/evaluation-sets.md）上测 hit@1/hit@5/MRR 与延迟"
    )
    eval_cmd.add_argument("file", type=Path)
    eval_cmd.add_argument("--no-progress", action="store_true", help="不显示进度条")
    eval_cmd.set_defaults(handler=_eval)

    tune = faq_commands.add_parser("tune", help="用知识库自己的同义问法微调语义模型，胜过基础模型才启用")
    tune.add_argument("--epochs", type=int, default=2)
    tune.add_argument("--seed", type=int, default=13)
    tune.set_defaults(handler=_tune)


def _store_engine() -> Engine:
    # The embedded default is the demo company: an empty store gets it, as with `crmbot up`.
    engine = create_engine_for()
    prepare_store(engine, load_demo=True)
    return engine


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        logger.error("找不到文件：%s", path)
        return EXIT_FAILED
    engine = _store_engine()
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as session:
            report = faq_store.load_faq_file(session, path)
    except Invalid as exc:  # a file that is neither .csv nor .json
        logger.error("%s", faq_reason(exc.code, **exc.data))
        engine.dispose()
        return EXIT_FAILED
    for error in report.errors:
        print(error, file=sys.stderr)
    table = Table(title=f"FAQ 导入结果：{path.name}")
    for column in ("读取", "新增", "更新", "未变", "拒绝"):
        table.add_column(column, justify="right")
    table.add_row(
        str(report.read),
        str(report.inserted),
        str(report.updated),
        str(report.unchanged),
        f"[red]{len(report.errors)}[/red]" if report.errors else "0",
    )
    Console(stderr=True).print(table)
    if report.inserted or report.updated:
        try:
            service = KnowledgeService(sessions)
        except EncoderUnavailable as exc:
            logger.warning("FAQ 已导入，但索引未更新：%s", exc)
        else:
            logger.info("知识库索引已更新：%d 条 FAQ", len(service.index))
    engine.dispose()
    return EXIT_ROWS_REJECTED if report.errors else 0


def _search(args: argparse.Namespace) -> int:
    engine = _store_engine()
    try:
        service = KnowledgeService(make_session_factory(engine))
    except EncoderUnavailable as exc:
        logger.error("%s", exc)
        return EXIT_FAILED
    result = service.search(args.question, top_k=args.top_k)
    engine.dispose()
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False))
        return 0
    verdict = {"answer": "直接回答", "suggest": "给出候选", "none": "没有合适的 FAQ"}[result.decision]
    table = Table(title=f"决定：{verdict}")
    for column in ("FAQ", "得分", "匹配的问法", "答案"):
        table.add_column(column)
    for hit in result.hits:
        table.add_row(hit.faq_id, f"{hit.score:.3f}", hit.question, hit.answer[:40])
    Console().print(table)
    return 0


def _eval(args: argparse.Namespace) -> int:
    try:
        faqs, queries = load_eval_set(args.file)
        encoder = SentenceEncoder(get_knowledge_settings().model_path())
    except (EvalSetError, EncoderUnavailable) as exc:
        logger.error("%s", exc)
        return EXIT_FAILED
    config = index_config(get_knowledge_settings())
    result = evaluate(
        encoder,
        faqs,
        queries,
        config=config,
        progress=(lambda q: q) if args.no_progress else (lambda q: _progress(q, len(queries), "评测")),
    )
    print(json.dumps(result.as_json()))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from knowledge.training.tuning import tune_from_store

    engine = _store_engine()
    try:
        report = tune_from_store(make_session_factory(engine), epochs=args.epochs, seed=args.seed)
    except (TuningError, EncoderUnavailable) as exc:
        logger.error("%s", exc)
        return EXIT_FAILED
    finally:
        engine.dispose()
    table = Table(title="领域微调：留出问法上的检索效果")
    for column in ("模型", "hit@1", "MRR", "问法对"):
        table.add_column(column, justify="left" if column == "模型" else "right")
    for name, figures in (("基础模型", report.base), ("微调模型", report.tuned)):
        table.add_row(name, f"{figures.hit1:.3f}", f"{figures.mrr:.3f}", str(figures.n))
    Console().print(table)
    comparison = report.comparison
    print(
        f"留出问法中，微调模型排得更好 {comparison.better} 条、更差 {comparison.worse} 条"
        f"（符号检验 p = {comparison.p_value:.2f}）"
    )
    verdict = (
        "已启用微调模型" if report.accepted else "微调模型没有明显更好（提升可能只是偶然），继续使用基础模型"
    )
    print(
        f"{verdict}（训练 {report.train_pairs} 对，留出 {report.heldout_pairs} 对，{report.seconds:.0f} 秒）"
    )
    return 0


def _progress(items: Iterable[_T], total: int, label: str) -> Iterator[_T]:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        for item in items:
            yield item
            progress.advance(task)
