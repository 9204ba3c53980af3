"""Engines, sessions and migrations of the CRM store.

One engine per process, built from settings; one short session per request, turn, tick or CLI run.
SQLite (the embedded default) is opened in WAL mode with a busy timeout, so that the API and the
action server can share the file; PostgreSQL is reached through psycopg 3.
"""

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from crm_store.models import Customer
from crm_store.settings import get_store_settings

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _normalise_url(raw: str) -> URL:
    url = make_url(raw)
    # A bare postgresql:// would pick psycopg2, which is not installed; psycopg 3 is the driver here.
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # SQLite ignores foreign keys unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers in one process proceed while another process writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_engine_for(url: str | None = None, *, connect_args: dict[str, Any] | None = None) -> Engine:
    """Create the engine for `url`, or for `CRM_DATABASE_URL` / the default SQLite file.

    Args:
        url: A SQLAlchemy URL; `None` reads the store settings.
        connect_args: Extra DBAPI connect arguments, e.g. `{"options": "-csearch_path=x"}` for psycopg.

    Returns:
        An engine; for a SQLite file its directory is created first. Its errors never show the
        statement's parameters, which hold phones and names: error messages end up in logs.
    """
    sa_url = _normalise_url(url if url is not None else get_store_settings().database_url)
    extra = dict(connect_args or {})
    if sa_url.get_backend_name() == "sqlite":
        sqlite_file = _sqlite_file(sa_url)
        if sqlite_file is not None:
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(sa_url, connect_args=extra, hide_parameters=True)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    return create_engine(sa_url, pool_pre_ping=True, connect_args=extra, hide_parameters=True)


def run_outside_transaction(server: URL | str, statement: str) -> None:
    """Run one statement on `server` in autocommit mode: CREATE and DROP DATABASE cannot run
    inside a transaction block. For tests and benchmarks that make their own PostgreSQL databases."""
    url = server.render_as_string(hide_password=False) if isinstance(server, URL) else server
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(statement))
    finally:
        engine.dispose()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to `engine`; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> "Config":
    """An Alembic config for the packaged migrations, independent of the current directory."""
    # Imported here: the action server and the API use the store but never migrate it.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        # ConfigParser interpolation would choke on a % in a password.
        url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
        config.set_main_option("sqlalchemy.url", url)
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the database behind `engine` to the latest schema (Alembic `upgrade head`)."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def is_empty(session: Session) -> bool:
    """True when the store holds no customer yet (e.g. the demo data should be imported)."""
    return session.scalar(select(Customer.customer_id).limit(1)) is None


def ping(engine: Engine) -> bool:
    """True when the database answers `SELECT 1`; never raises, for health checks."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        # No traceback: a health check polls, and one line per failure is enough.
        logger.warning("database ping failed for %s: %s", engine.url, exc)
        return False
    return True
