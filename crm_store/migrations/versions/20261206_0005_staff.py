"""Staff side: sign-in fields of employees, customers' preferences, lost reasons and the stage
history of opportunities.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 13:30:00.000000+08:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both engines (SQLite has ADD and DROP COLUMN): a batch migration would copy
# `employees` and `opportunities` into new tables, which other tables' foreign keys forbid.


def _drop_columns(table: str, *columns: str) -> None:
    for column in columns:
        op.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))


def upgrade() -> None:
    op.add_column("employees", sa.Column("password_hash", sa.String(length=255), nullable=True))
    op.add_column("employees", sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
    op.add_column("employees", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("customers", sa.Column("preferences", sa.Text(), nullable=True))
    op.add_column("opportunities", sa.Column("lost_reason", sa.Text(), nullable=True))
    op.create_table(
        "opportunity_stage_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("opportunity_id", sa.String(length=32), nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=True),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.opportunity_id"],
            name=op.f("fk_opportunity_stage_changes_opportunity_id_opportunities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity_stage_changes")),
    )
    op.create_index(
        op.f("ix_opportunity_stage_changes_opportunity_id"), "opportunity_stage_changes", ["opportunity_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_opportunity_stage_changes_opportunity_id"), table_name="opportunity_stage_changes")
    op.drop_table("opportunity_stage_changes")
    _drop_columns("opportunities", "lost_reason")
    _drop_columns("customers", "preferences")
    _drop_columns("employees", "locked_until", "failed_logins", "password_hash")
