"""Bring a store and the models to the state the running assistant needs.

Shared by the CLI, the tests and the benchmarks, so that all three prepare them the same way.
"""

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Engine

from crm_store.accounts import DEMO_PASSWORD, set_demo_passwords
from crm_store.db import create_engine_for, is_empty, make_session_factory, migrate
from crm_store.importer import ImportReport, import_csv_dir
from crm_store.lookups import entity_names
from crmbot import paths
from crmbot.steps import StepRunner
from crmbot.training import ensure_trained, needs_training, write_generated_bot_data
from crmbot.tuning_job import base_is_ready, build_base

logger = logging.getLogger(__name__)


def prepare_store(engine: Engine, *, load_demo: bool, progress: bool = False) -> ImportReport | None:
    """Create or migrate the schema; load the demo company into an empty store when asked."""
    migrate(engine)
    if not load_demo:
        return None
    with make_session_factory(engine)() as session:
        if not is_empty(session):
            return None
    demo = paths.demo_fixture_dir()
    logger.info("数据库为空，导入演示数据：%s", demo)
    report = import_csv_dir(make_session_factory(engine), demo, progress=progress)
    give_demo_passwords(engine)
    return report


def give_demo_passwords(engine: Engine) -> None:
    """Give the demo company's employees the demo password (only ever called for the demo company)."""
    with make_session_factory(engine).begin() as session:
        given = set_demo_passwords(session)
    if given:
        logger.info(
            "演示员工 %s 的登录密码已设为 %s（仅供演示，请勿用于真实数据）", "、".join(given), DEMO_PASSWORD
        )


def write_names(engine: Engine) -> None:
    """The store's product, customer and employee names as Rasa lookup tables and jieba words."""
    with make_session_factory(engine)() as session:
        write_generated_bot_data(entity_names(session))


def prepare_model(engine: Engine, *, force: bool = False, runner: StepRunner | None = None) -> Path:
    """Generate the name lists from the store, then train unless a model for these inputs exists."""
    write_names(engine)
    return ensure_trained(force=force, runner=runner)


def prepare_demo_model(*, force: bool = False, runner: StepRunner | None = None) -> Path:
    """The Rasa model of the demo company, from a scratch store: what the end-to-end tests chat with,
    and what a first `make up` on the demo company reuses (same names, same fingerprint)."""
    with tempfile.TemporaryDirectory(prefix="crm-demo-") as scratch:
        engine = create_engine_for(f"sqlite:///{scratch}/crm.db")
        try:
            prepare_store(engine, load_demo=True)
            return prepare_model(engine, force=force, runner=runner)
        finally:
            engine.dispose()


def prepare_for_start(engine: Engine, runner: StepRunner) -> Path:
    """Everything `crmbot up` needs before it starts: the Rasa model and the base FAQ encoder.

    The two are independent, so where both are missing they are made at the same time: the
    encoder's build and export (about a minute, mostly one core) overlap the Rasa training
    (about seven minutes), which they slow by less than they would take after it. The tuned
    encoder is not waited for (crmbot.tuning_job).
    """
    write_names(engine)
    if base_is_ready() or not needs_training():
        build_base(runner)
        return ensure_trained(runner=runner)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
    encoder = pool.submit(build_base, runner)
    try:
        # The training runs on this thread, so that Ctrl-C interrupts it here.
        model = ensure_trained(runner=runner)
        encoder.result()
    except BaseException:
        # Ctrl-C or a failed step: the other step must not run on without anyone waiting for it.
        runner.stop_all()
        raise
    finally:
        pool.shutdown(wait=True)
    return model
