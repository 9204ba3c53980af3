"""Engines, migrations and the store's basic guarantees, on every backend."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from crm_store.db import alembic_config, create_engine_for, is_empty, make_session_factory, migrate, ping
from crm_store.models import AuditLog, Base, Customer, Outbox, Task
from crm_store.settings import PROJECT_ROOT, StoreSettings, get_store_settings

EXPECTED_TABLES = {
    "employees",
    "products",
    "customers",
    "orders",
    "order_items",
    "tickets",
    "interactions",
    "opportunities",
    "faqs",
    "tasks",
    "audit_log",
    "outbox",
    "faq_unanswered",
    "faq_feedback",
    "knowledge_state",
    "care_channels",
    "care_locks",
}


def test_settings_default_to_a_sqlite_file_under_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    # A developer's .env must not decide this test.
    monkeypatch.setitem(StoreSettings.model_config, "env_file", None)
    assert get_store_settings().database_url == f"sqlite:///{PROJECT_ROOT}/var/crm.db"
    assert Path(__file__).resolve().parents[2] == PROJECT_ROOT


def test_settings_read_crm_database_url_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", "postgresql+psycopg://crm@db/crm")
    assert get_store_settings().database_url == "postgresql+psycopg://crm@db/crm"


def test_create_engine_for_makes_the_sqlite_directory(tmp_path: Path) -> None:
    db_file = tmp_path / "nested" / "var" / "crm.db"
    engine = create_engine_for(f"sqlite:///{db_file}")
    try:
        assert ping(engine)
        assert db_file.is_file()
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        engine.dispose()


def test_bare_postgresql_url_uses_psycopg3() -> None:
    engine = create_engine_for("postgresql://crm@127.0.0.1:1/crm")
    assert engine.dialect.driver == "psycopg"


def test_ping_is_false_for_an_unreachable_database() -> None:
    engine = create_engine_for("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    assert ping(engine) is False


# SQLite cannot reflect the expression indexes of readable ids (ix_*_id_order); alembic says so and
# compares the rest. tests/store/test_ids.py checks that they exist.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_migrate_creates_every_table_and_matches_the_models(store_engine: Engine) -> None:
    assert set(inspect(store_engine).get_table_names()) >= EXPECTED_TABLES
    with store_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_again_from_another_directory_is_a_no_op(
    store_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    migrate(store_engine)
    with store_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            ScriptDirectory.from_config(alembic_config()).get_current_head()
        ]


def test_is_empty_until_a_customer_exists(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        assert is_empty(session)
    with session_factory.begin() as session:
        session.add(Customer(customer_id="C1", name="测试", type="个人"))
    with session_factory() as session:
        assert not is_empty(session)


def test_foreign_keys_are_enforced(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(Customer(customer_id="C1", name="测试", type="个人", owner_id="E404"))


def test_timestamps_come_back_aware_in_utc(
    demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    with demo_store.begin() as session:
        task = Task(
            owner_id="E02", customer_id="C0001", title="回访", due_date=date(2026, 11, 26), source="chat"
        )
        session.add(task)
        session.flush()
        task_id = task.id
    with demo_store() as session:
        stored = session.get_one(Task, task_id)
        assert stored.status == "待办"
        assert stored.created_at.utcoffset() == timedelta(0)
        beijing = stored.created_at.astimezone(UTC) + timedelta(hours=8)
        assert beijing.date() == date(2026, 11, 23)


def test_naive_datetimes_are_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive"), session_factory.begin() as session:
        session.add(
            AuditLog(occurred_at=datetime(2026, 11, 23, 9, 0), actor_role="admin", action="x", entity="y")
        )


def test_outbox_dedupe_key_prevents_a_second_copy(demo_store: sessionmaker[Session]) -> None:
    message = {
        "customer_id": "C0001",
        "channel": "sms",
        "kind": "birthday",
        "dedupe_key": "birthday:C0001:2026",
    }
    with demo_store.begin() as session:
        session.add(Outbox(body="生日快乐", **message))
    with pytest.raises(IntegrityError), demo_store.begin() as session:
        session.add(Outbox(body="生日快乐", **message))
    with demo_store() as session:
        assert len(session.scalars(select(Outbox)).all()) == 1


def test_session_factory_keeps_objects_readable_after_commit(store_engine: Engine) -> None:
    factory = make_session_factory(store_engine)
    with factory.begin() as session:
        customer = Customer(customer_id="C1", name="测试", type="个人")
        session.add(customer)
    assert customer.name == "测试"


def test_database_errors_do_not_carry_personal_data(store_engine: Engine) -> None:
    # Error messages end up in logs: the phone number of the failing statement must not.
    with store_engine.connect() as connection, pytest.raises(DBAPIError) as failure:
        connection.execute(
            text("SELECT no_such_column FROM customers WHERE phone = :p"), {"p": "18201164104"}
        )
    assert "18201164104" not in str(failure.value)
