"""Migration 0004 (the kind of a hand-off message) goes down and up again on a store holding data."""

from datetime import datetime

from alembic import command
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.db import alembic_config, migrate
from crm_store.handoff import add_staff_reply, close_handoff, open_handoff
from crm_store.models import HandoffMessage

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ)
# The closing words every close queued before 0004, which the upgrade recognises.
OLD_CLOSING_TEXT = "本次人工服务已结束，感谢您的耐心。方便为这次服务打个分吗？"


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_downgrade_to_0003_and_back_marks_the_old_closing_messages(
    store_engine: Engine, demo_store: sessionmaker[Session]
) -> None:
    with demo_store.begin() as session:
        case_id = open_handoff(session, conversation="web-1", reason="客户要求", now=NOW).case.id
        add_staff_reply(session, case_id=case_id, text="您好", staff_id=None, now=NOW)
        close_handoff(session, case_id=case_id, closing_text=OLD_CLOSING_TEXT, now=NOW)

    _downgrade(store_engine, "0003")
    assert "kind" not in {c["name"] for c in inspect(store_engine).get_columns("handoff_messages")}
    with store_engine.begin() as connection:
        # A message queued by the code before 0004: no kind.
        connection.execute(
            text("INSERT INTO handoff_messages (case_id, text, created_at) VALUES (:case_id, '再见', :at)"),
            {"case_id": case_id, "at": NOW},
        )

    migrate(store_engine)
    with demo_store() as session:
        kinds = session.execute(
            select(HandoffMessage.text, HandoffMessage.kind).order_by(HandoffMessage.id)
        ).all()
    assert [tuple(row) for row in kinds] == [
        ("您好", "reply"),
        (OLD_CLOSING_TEXT, "closing"),
        ("再见", "reply"),
    ]
