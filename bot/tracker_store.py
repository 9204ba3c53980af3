"""Rasa's SQL tracker store, refusing a turn while its database is unreachable (Rasa environment).

Loaded by the Rasa server from bot/endpoints.yml (`type: bot.tracker_store.StrictSQLTrackerStore`;
`rasa run` puts the working directory, the project root, on `sys.path`). Not a training input.

Rasa wraps every tracker store in its `FailSafeTrackerStore` (rasa/core/agent.py), which answers a
failed read with no tracker and keeps a failed write in the replica's memory. During a database
outage a turn would then be answered as the first of a new conversation, a complaint form
forgotten mid-way, and left out of the shared tracker: neither another replica nor this one after
the outage would know it was said. This store lets a database error through instead, as
`TrackerStoreUnavailable`: Rasa's HTTP server closes the connection without an answer, the API
gives the customer its polite 503 (api/gateway.py), and a turn is either in the tracker or was
refused, never answered out of context (tests/e2e/test_scale_faults.py restarts PostgreSQL).

`TrackerStoreUnavailable` derives from BaseException because that is the only way past the
`except Exception` of `FailSafeTrackerStore` and of the REST channel; the lock store's context
manager still releases the conversation's lock on the way out.

The engine checks a pooled connection before using it (`pool_pre_ping`), so that after the
database restarts the first turn gets a fresh connection instead of a dead one and a refusal, and
keeps statement parameters (events, message texts) out of its errors (`hide_parameters`). On
SQLite (the embedded default) it opens the file as the CRM store opens its own (crm_store/db.py):
write-ahead log, `synchronous=NORMAL` (one sync per checkpoint instead of two per turn; a power
cut may lose the last turns, never corrupt the file) and a busy timeout, so that the API reading
or erasing a conversation (service metrics, `crmbot privacy erase`) never fails Rasa's write; and
it keeps its connections open in a pool rather than opening the file for every read and write.

It reads and writes the same rows as Rasa's store, with SQLAlchemy Core statements built once
instead of ORM queries built for every turn: Rasa's store loads every event of the session as an
ORM object, generates its queries' cache keys anew at each read and write, and inserts new events
one by one; that cost Rasa's one thread about 5 ms a turn (bench/turn_cost.py, docs/benchmarks.md).
tests/e2e/test_tracker_store.py checks that each store reads what the other wrote.
"""

import json
import logging
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

logger = logging.getLogger(__name__)

# As the CRM store's (crm_store/db.py); this module cannot import it (another environment).
SQLITE_BUSY_TIMEOUT_MS = 10_000


class TrackerStoreUnavailable(BaseException):
    """The tracker store's database failed: the turn is refused rather than answered blind."""


class StrictSQLTrackerStore(SQLTrackerStore):
    """`SQLTrackerStore` whose database errors refuse the turn (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            "hide_parameters": True,
            **create_engine_kwargs(url),
        }
        sqlite = url.get_backend_name() == "sqlite"
        if sqlite:
            # SQLAlchemy 1.4 opens a SQLite file anew for every session (NullPool): a pool keeps one
            # open. Rasa's queries all run on its event loop's thread, one at a time.
            options.update(poolclass=sa.pool.QueuePool, connect_args={"check_same_thread": False})
        self.engine = sa.create_engine(url, **options)
        if sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
        self._statements = EventStatements(self.SQLEvent.__table__)

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        query = (
            self._statements.all_sessions
            if fetch_events_from_all_sessions
            else self._statements.latest_session
        )
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query, {"sender_id": sender_id}).scalars().all()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise _unavailable("read", exc) from None
        if not self.domain or not rows:
            return None
        return DialogueStateTracker.from_dict(
            sender_id, [json.loads(data) for data in rows], self.domain.slots
        )

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)
        try:
            with self.engine.begin() as connection:
                stored = connection.execute(
                    self._statements.count_latest_session, {"sender_id": tracker.sender_id}
                )
                rows = [
                    _row(tracker.sender_id, event) for event in list(tracker.events)[stored.scalar_one() :]
                ]
                if rows:
                    connection.execute(self._statements.insert, rows)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise _unavailable("write", exc) from None


class EventStatements:
    """`SQLTrackerStore`'s queries (Rasa 3.6.21's `_event_query`, `_additional_events` and `save`) as
    Core statements, built once: SQLAlchemy then finds them compiled in its cache."""

    def __init__(self, events: sa.Table) -> None:
        sender = sa.bindparam("sender_id")
        # The latest session: the events from its `session_started` on, or all if there is none.
        session_start = (
            sa.select(sa.func.max(events.c.timestamp))
            .where(events.c.sender_id == sender, events.c.type_name == SessionStarted.type_name)
            .scalar_subquery()
        )
        of_latest_session = sa.and_(
            events.c.sender_id == sender,
            sa.or_(events.c.timestamp >= session_start, session_start.is_(None)),
        )
        # By id, as Rasa orders them: timestamps are floats and not unique.
        self.latest_session = sa.select(events.c.data).where(of_latest_session).order_by(events.c.id)
        self.all_sessions = sa.select(events.c.data).where(events.c.sender_id == sender).order_by(events.c.id)
        self.count_latest_session = sa.select(sa.func.count()).select_from(events).where(of_latest_session)
        self.insert = events.insert()


def _row(sender_id: str, event: Event) -> dict[str, Any]:
    """An event's row, as `SQLTrackerStore.save` writes it."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _unavailable(what: str, error: sqlalchemy.exc.SQLAlchemyError) -> TrackerStoreUnavailable:
    # The error's class only, and raised `from None`: the error's text can quote the SQL and the
    # conversation's events, and asyncio logs the whole chain of the refused connection's task.
    logger.error("tracker store %s failed (%s): the turn is refused", what, type(error).__name__)
    return TrackerStoreUnavailable(f"tracker store {what} failed: {type(error).__name__}")
