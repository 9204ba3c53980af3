"""Readable ids: the next number after the greatest one, whatever the padding of ids already there."""

from datetime import date

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from crm_store.ids import add_with_new_id, next_numeric_id
from crm_store.models import Customer, Employee, Interaction


def _interaction(interaction_id: str) -> Interaction:
    return Interaction(
        interaction_id=interaction_id,
        customer_id="C1",
        employee_id="E1",
        kind="电话",
        occurred_at=date(2026, 11, 23),
        summary="测试",
    )


def _people(session: Session) -> None:
    session.add_all(
        [
            Employee(employee_id="E1", name="李娜", role="sales"),
            Customer(customer_id="C1", name="测试", type="个人"),
        ]
    )
    session.flush()


def test_the_next_id_follows_the_greatest_number_even_past_the_padding(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        _people(session)
        for interaction_id in ("I99999", "I100000", "I00042", "I-IMPORTED"):
            session.add(_interaction(interaction_id))
    with session_factory() as session:
        assert next_numeric_id(session, column=Interaction.interaction_id, prefix="I", width=5) == "I100001"


def test_a_wider_padded_small_id_does_not_hide_the_greatest_one(
    session_factory: sessionmaker[Session],
) -> None:
    # An imported "I0000001" is longer than "I00041" but smaller: allocating must not retry "I00002".
    with session_factory.begin() as session:
        _people(session)
        for number in range(1, 42):
            session.add(_interaction(f"I{number:05d}"))
        session.add(_interaction("I0000001"))
    with session_factory.begin() as session:
        row = add_with_new_id(
            session,
            model=Interaction,
            column=Interaction.interaction_id,
            prefix="I",
            width=5,
            build=_interaction,
        )
        assert row.interaction_id == "I00042"


@pytest.mark.parametrize("table", ["tickets", "interactions", "opportunities", "faqs"])
def test_the_migrated_store_has_the_index_the_allocator_reads(store_engine: Engine, table: str) -> None:
    catalogue = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if store_engine.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    )
    with store_engine.connect() as connection:
        assert f"ix_{table}_id_order" in set(connection.execute(text(catalogue)).scalars())
