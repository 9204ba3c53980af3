"""Customer self-service: ticket details and SLA, staff notices, verification lock-out, hand-off cases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:19:14.148288+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_ONLY = sa.text("status = 'open'")


def upgrade() -> None:
    # Existing tables first: on SQLite batch mode recreates them, best done before new tables refer to them.
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("order_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("contact_phone", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("request_key", sa.String(length=64), nullable=True))
        # A complaint from someone not verified has no customer.
        batch_op.alter_column("customer_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.create_index(batch_op.f("ix_tickets_due_at"), ["due_at"])
        batch_op.create_index(batch_op.f("ix_tickets_order_id"), ["order_id"])
        batch_op.create_unique_constraint(batch_op.f("uq_tickets_request_key"), ["request_key"])
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_order_id_orders"), "orders", ["order_id"], ["order_id"]
        )

    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("employee_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbox_employee_id"), ["employee_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_employee_id_employees"), "employees", ["employee_id"], ["employee_id"]
        )

    op.create_table(
        "verification_attempts",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_verification_attempts")),
    )

    op.create_table(
        "handoff_cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=True),
        sa.Column("ticket_id", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("transcript", sa.JSON(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.customer_id"], name=op.f("fk_handoff_cases_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.ticket_id"], name=op.f("fk_handoff_cases_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_cases")),
    )
    op.create_index(op.f("ix_handoff_cases_customer_id"), "handoff_cases", ["customer_id"])
    op.create_index(op.f("ix_handoff_cases_sender_id"), "handoff_cases", ["sender_id"])
    op.create_index(op.f("ix_handoff_cases_ticket_id"), "handoff_cases", ["ticket_id"])
    op.create_index("ix_handoff_cases_status_opened_at", "handoff_cases", ["status", "opened_at"])
    op.create_index(
        "uq_handoff_cases_open_sender_id",
        "handoff_cases",
        ["sender_id"],
        unique=True,
        sqlite_where=_OPEN_ONLY,
        postgresql_where=_OPEN_ONLY,
    )

    op.create_table(
        "handoff_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["handoff_cases.id"],
            name=op.f("fk_handoff_messages_case_id_handoff_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["employees.employee_id"], name=op.f("fk_handoff_messages_staff_id_employees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_messages")),
    )
    op.create_index(
        "ix_handoff_messages_case_id_delivered_at", "handoff_messages", ["case_id", "delivered_at"]
    )
    op.create_index(op.f("ix_handoff_messages_staff_id"), "handoff_messages", ["staff_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_handoff_messages_staff_id"), table_name="handoff_messages")
    op.drop_index("ix_handoff_messages_case_id_delivered_at", table_name="handoff_messages")
    op.drop_table("handoff_messages")

    op.drop_index("uq_handoff_cases_open_sender_id", table_name="handoff_cases")
    op.drop_index("ix_handoff_cases_status_opened_at", table_name="handoff_cases")
    op.drop_index(op.f("ix_handoff_cases_ticket_id"), table_name="handoff_cases")
    op.drop_index(op.f("ix_handoff_cases_sender_id"), table_name="handoff_cases")
    op.drop_index(op.f("ix_handoff_cases_customer_id"), table_name="handoff_cases")
    op.drop_table("handoff_cases")

    op.drop_table("verification_attempts")

    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbox_employee_id_employees"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_outbox_employee_id"))
        batch_op.drop_column("employee_id")

    # Tickets filed without a customer cannot survive a schema that requires one.
    op.execute("DELETE FROM tickets WHERE customer_id IS NULL")
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tickets_order_id_orders"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_tickets_request_key"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_tickets_order_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_due_at"))
        batch_op.alter_column("customer_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column("request_key")
        batch_op.drop_column("rated_at")
        batch_op.drop_column("rating")
        batch_op.drop_column("assigned_at")
        batch_op.drop_column("due_at")
        batch_op.drop_column("channel")
        batch_op.drop_column("contact_phone")
        batch_op.drop_column("description")
        batch_op.drop_column("order_id")
