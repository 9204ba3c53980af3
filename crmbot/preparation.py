"""Bring a store and a model to the state the running assistant needs.

Shared by the CLI, the tests and the benchmarks, so that all three prepare them the same way.
"""

import logging
from pathlib import Path

from sqlalchemy import Engine

from crm_store.db import is_empty, make_session_factory, migrate
from crm_store.importer import ImportReport, import_csv_dir
from crm_store.lookups import entity_names
from crmbot import paths
from crmbot.training import ensure_trained, write_generated_bot_data

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
    return import_csv_dir(make_session_factory(engine), demo, progress=progress)


def prepare_model(engine: Engine, *, force: bool = False) -> Path:
    """Generate the name lists from the store, then train unless a model for these inputs exists."""
    with make_session_factory(engine)() as session:
        write_generated_bot_data(entity_names(session))
    return ensure_trained(force=force)
