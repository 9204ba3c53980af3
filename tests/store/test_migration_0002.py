"""Migration 0002 (self-service) goes down and up again on a store holding data, on every backend."""

from alembic import command
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.db import alembic_config, migrate
from crm_store.models import Ticket

SELF_SERVICE_TABLES = {"verification_attempts", "handoff_cases", "handoff_messages"}


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_downgrade_to_0001_and_back_keeps_the_data(
    store_engine: Engine, demo_store: sessionmaker[Session]
) -> None:
    _downgrade(store_engine, "0001")
    inspector = inspect(store_engine)
    assert SELF_SERVICE_TABLES.isdisjoint(inspector.get_table_names())
    assert "due_at" not in {c["name"] for c in inspector.get_columns("tickets")}
    assert not next(c for c in inspector.get_columns("tickets") if c["name"] == "customer_id")["nullable"]

    migrate(store_engine)
    assert set(inspect(store_engine).get_table_names()) >= SELF_SERVICE_TABLES
    with demo_store() as session:
        assert len(session.scalars(select(Ticket.ticket_id)).all()) == 16
        assert session.get_one(Ticket, "T09001").customer_id == "C0001"
