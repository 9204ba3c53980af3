"""Exactly one active care scheduler: a lock that one process holds and the others wait for.

Two kinds, chosen by the database (`scheduler_lock`):

- **PostgreSQL**: a session-level advisory lock (`pg_try_advisory_lock`) taken on a dedicated
  connection that stays open for as long as the process leads. The server releases it when that
  connection ends, so a killed leader frees it at once. The heartbeat checks that the connection
  is still alive.
- **SQLite**: a lease row in `care_locks` (name, holder, expires_at). Taking it is one atomic
  upsert that succeeds only when the row is free, expired or already ours; the leader renews it
  at every heartbeat (a third of the lease). A killed leader's lease runs out after `ttl_s`, and a
  waiting process takes over then.

Leases are timed on the real clock, never the CRM clock (`CRM_TODAY` moves the date, and two
processes must agree on when a lease ends). No personal data is involved: the holder is
`hostname:pid:random`.
"""

import contextlib
import hashlib
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from sqlalchemy import Connection, Engine, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from crm_store.models import CareLock

__all__ = [
    "DEFAULT_LEASE_TTL_S",
    "SCHEDULER_LOCK",
    "AdvisoryLock",
    "LeaseLock",
    "SchedulerLock",
    "advisory_key",
    "new_holder",
    "scheduler_lock",
]

logger = logging.getLogger(__name__)

SCHEDULER_LOCK: Final = "care_scheduler"
"""The name of the care scheduler's lock (the lease row's `name`; hashed into the advisory key)."""

DEFAULT_LEASE_TTL_S: Final = 30.0
"""How long a SQLite lease lasts without a heartbeat: the longest wait before a standby takes over."""


class SchedulerLock(Protocol):
    """A lock that at most one process holds; `renew` is the heartbeat."""

    holder: str

    def try_acquire(self) -> bool:
        """Take the lock if it is free (or already ours); True when this process holds it now."""
        ...

    def renew(self) -> bool:
        """Keep holding it; False when it was lost (the caller must stop leading)."""
        ...

    def release(self) -> None:
        """Give it up (idempotent); a standby may take over at once."""
        ...


def new_holder() -> str:
    """A holder id unique to this process: host, pid and a random suffix (no personal data)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_lock`, derived from the lock's name."""
    return int.from_bytes(hashlib.sha256(f"xiaozhushou:{name}".encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """PostgreSQL: a session advisory lock on a dedicated autocommit connection."""

    def __init__(self, engine: Engine, name: str = SCHEDULER_LOCK, *, holder: str | None = None) -> None:
        self.engine = engine
        self.name = name
        self.key = advisory_key(name)
        self.holder = holder or new_holder()
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return self.renew()
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}))
        except SQLAlchemyError:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self._connection = connection
        return True

    def renew(self) -> bool:
        if self._connection is None:
            return False
        try:
            # The lock lives as long as this connection; a query proves that it still does.
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            logger.warning("lost the scheduler's database connection (%s)", type(exc).__name__)
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        # Closing the connection releases it anyway, should the unlock fail.
        with contextlib.suppress(SQLAlchemyError):
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except SQLAlchemyError:
                connection.invalidate()


class LeaseLock:
    """SQLite (or any database): a lease row in `care_locks`, renewed by a heartbeat."""

    def __init__(
        self,
        engine: Engine,
        name: str = SCHEDULER_LOCK,
        *,
        holder: str | None = None,
        ttl_s: float = DEFAULT_LEASE_TTL_S,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.engine = engine
        self.name = name
        self.holder = holder or new_holder()
        self.ttl = timedelta(seconds=ttl_s)
        self._held_until: datetime | None = None

    def try_acquire(self) -> bool:
        return self._take()

    def renew(self) -> bool:
        return self._take()

    def release(self) -> None:
        self._held_until = None
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(CareLock)
                    .where(CareLock.name == self.name, CareLock.holder == self.holder)
                    .values(holder=None, expires_at=None)
                )
        except SQLAlchemyError as exc:
            # The lease then simply runs out.
            logger.warning("could not release the scheduler lease (%s)", type(exc).__name__)

    def holder_now(self) -> tuple[str | None, datetime | None]:
        """Who holds the lease and until when (None, None when nobody ever took it)."""
        table = CareLock.__table__
        with self.engine.connect() as connection:
            row = connection.execute(
                select(table.c.holder, table.c.expires_at).where(table.c.name == self.name)
            ).first()
        return (row.holder, row.expires_at) if row is not None else (None, None)

    def _take(self) -> bool:
        """One atomic upsert: insert the row, or take it over when it is free, expired or ours."""
        now = datetime.now(UTC)
        table = CareLock.__table__
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        insert = dialect.insert(table).values(name=self.name, holder=self.holder, expires_at=now + self.ttl)
        upsert = insert.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"holder": insert.excluded.holder, "expires_at": insert.excluded.expires_at},
            where=or_(
                table.c.holder == self.holder,
                table.c.holder.is_(None),
                table.c.expires_at.is_(None),
                table.c.expires_at < now,
            ),
        )
        try:
            with self.engine.begin() as connection:
                connection.execute(upsert)
                holder = connection.scalar(select(table.c.holder).where(table.c.name == self.name))
        except SQLAlchemyError as exc:
            # A busy or unreachable database is not a lost lease: nobody can take it before it runs
            # out, so a holder keeps leading until then and tries again at the next heartbeat.
            logger.warning("could not take or renew the scheduler lease (%s)", type(exc).__name__)
            return self._held_until is not None and now < self._held_until
        if holder != self.holder:
            self._held_until = None
            return False
        self._held_until = now + self.ttl
        return True


def scheduler_lock(
    engine: Engine, *, name: str = SCHEDULER_LOCK, ttl_s: float = DEFAULT_LEASE_TTL_S
) -> SchedulerLock:
    """The lock that fits the database: an advisory lock on PostgreSQL, a lease row elsewhere."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, name)
    return LeaseLock(engine, name, ttl_s=ttl_s)
