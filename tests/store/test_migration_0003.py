"""Migration 0003 (FAQ knowledge base) goes down and up again on a store holding data, on every backend."""

from alembic import command
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.db import alembic_config, migrate
from crm_store.faqs import create_faq, faq_revision, record_unanswered
from crm_store.models import Faq, KnowledgeState

FAQ_TABLES = {"faq_unanswered", "faq_feedback", "knowledge_state"}


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_downgrade_to_0002_and_back_keeps_the_faqs(
    store_engine: Engine, demo_store: sessionmaker[Session]
) -> None:
    with demo_store.begin() as session:
        record_unanswered(session, "周末发货吗")

    _downgrade(store_engine, "0002")
    assert FAQ_TABLES.isdisjoint(inspect(store_engine).get_table_names())

    migrate(store_engine)
    assert set(inspect(store_engine).get_table_names()) >= FAQ_TABLES
    with demo_store() as session:
        assert session.scalar(select(func.count()).select_from(Faq)) == 24
        # The counter row is seeded again, so the first write after the upgrade is a plain update.
        assert session.get_one(KnowledgeState, "faqs").revision == 0
        before = faq_revision(session)
    with demo_store.begin() as session:
        create_faq(session, question="周末发货吗？", answer="周末照常发货。")
    with demo_store() as session:
        assert session.get_one(KnowledgeState, "faqs").revision == 1
        assert faq_revision(session) != before
