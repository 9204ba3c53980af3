"""The action server's one connection to the CRM store."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from crm_store.db import create_engine_for, make_session_factory


@cache
def _session_factory() -> sessionmaker[Session]:
    # Created on first use, not at import: the action server must start even while the
    # database is still coming up, and each turn reports a store failure on its own.
    return make_session_factory(create_engine_for())


@contextmanager
def store_session() -> Iterator[Session]:
    """A short-lived session for one dialogue turn."""
    with _session_factory()() as session:
        yield session
